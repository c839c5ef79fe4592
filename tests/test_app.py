"""`python app.py` as a new user runs it: the store answers on loopback, and Gradio's share advice is not printed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_app_py_serves_the_store_and_says_where(gpts_dir: Path, tmp_path: Path):
    (gpts_dir / "echo.yaml").write_text("name: Echo\ninstructions: Be brief.\nmodel: {provider: fake}\n", encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("gptbuilder store on "):
                break
        output = "".join(lines)
        assert f"gptbuilder store on http://127.0.0.1:{port}" in output, output
        assert str(gpts_dir.resolve()) in output
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=30)
    output = "".join(lines) + rest
    assert "share=True" not in output and "public link" not in output, output
