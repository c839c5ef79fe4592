"""`gptbuilder serve` as a real process on a free loopback port, for tests that kill it (`kill -9`) and restart it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


class ServeProcess:
    """One `serve` command line (lazy: GPTs load on first use), started, killed and restarted on the same port."""

    def __init__(self, gpts_dir: Path, data_dir: Path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-c", "from gptbuilder.cli import main; main()", "--gpts", str(gpts_dir),
                        "--data", str(data_dir), "serve", "--port", str(self.port), "--lazy"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> ServeProcess:
        """Start it and wait until /ready says ready."""
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, "serve exited"
            time.sleep(0.1)
        self.process.kill()
        raise AssertionError("serve did not become ready")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, nothing the process could still write."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """A clean stop (SIGTERM), if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
