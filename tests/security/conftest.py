"""Fixtures for the attack tests: the sandbox run as the server's user and, where possible, as an unprivileged one.

`sandbox` runs code the way the `python` tool does and returns the SandboxResult. It is parametrized:

- `server-user`: in this process, as whoever runs pytest (root in CI and in many containers);
- `unprivileged`: as root, the same sandbox module run by `runuser -u nobody` under the system Python, as a
  server started by an ordinary user would (bubblewrap then builds a user namespace). It needs root,
  runuser and a system /usr/bin/python3 (pytest's own interpreter may live where nobody can read).

`victim` is what an attacker wants: a GPTs folder, a data folder with the SQLite database holding a widget
signing key, a secrets file and a canary in the server's environment, all readable and writable by the
unprivileged user too, so that only the sandbox stands between them and the code.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gptbuilder.tools import sandbox as sandbox_module
from gptbuilder.tools.sandbox import SandboxResult, run_python

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"

Run = Callable[..., SandboxResult]

# Runs as nobody: reads the code on stdin, runs it in the sandbox, prints the result as JSON.
_DRIVER = """
import dataclasses, json, sys
from gptbuilder.tools.sandbox import run_python
options = json.loads(sys.argv[1])
result = run_python(sys.stdin.read(), **options)
print(json.dumps(dataclasses.asdict(result)))
"""


@dataclass(frozen=True)
class Victim:
    """The server's secrets and files the attacks go after."""

    root: Path
    gpts: Path
    database: Path
    secrets: Path
    canary: str

    @property
    def signing_key(self) -> str:
        return f"widget-signing-key-{self.canary}"


def _shared_dir(prefix: str) -> Path:
    """A fresh folder under /tmp that the unprivileged user may enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture
def victim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Victim]:
    """A server's GPTs folder, database, secrets file and environment, open to anyone but the sandbox."""
    root = _shared_dir("gptbuilder-victim-")
    canary = uuid.uuid4().hex
    gpts = root / "gpts"
    gpts.mkdir()
    (gpts / "support.yaml").write_text("name: Support\ninstructions: Help.\n")
    data = root / "data"
    data.mkdir()
    database = data / "gptbuilder.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE settings (name TEXT, value TEXT)")
        db.execute("INSERT INTO settings VALUES ('widget_signing_key', ?)", (f"widget-signing-key-{canary}",))
    db.close()
    secrets = root / ".env"
    secrets.write_text(f"OPENAI_API_KEY=sk-{canary}\n")
    for path in [root, gpts, data]:
        path.chmod(0o777)
    for path in [*gpts.iterdir(), database, secrets]:
        path.chmod(0o666)
    monkeypatch.setenv("GPTBUILDER_ADMIN_API_KEYS", f"admin-{canary}")
    monkeypatch.setenv("OPENAI_API_KEY", f"sk-{canary}")
    yield Victim(root, gpts, database, secrets, canary)
    shutil.rmtree(root, ignore_errors=True)


def _unprivileged_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "already unprivileged: the server-user runs cover it"
    if shutil.which("runuser") is None or not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"needs runuser and a system Python at {SYSTEM_PYTHON} that nobody can run"
    return None


@pytest.fixture(scope="session")
def _unprivileged_package() -> Iterator[Path]:
    """The sandbox module and what it imports, copied where nobody can read them (the repo may be private)."""
    folder = _shared_dir("gptbuilder-sandbox-")
    package = folder / "gptbuilder"
    (package / "tools").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tools" / "__init__.py").write_text("")
    shutil.copy(ROOT / "gptbuilder" / "errors.py", package / "errors.py")
    shutil.copy(Path(sandbox_module.__file__), package / "tools" / "sandbox.py")
    (folder / "driver.py").write_text(_DRIVER)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _run_unprivileged(folder: Path, code: str, **options: float) -> SandboxResult:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(folder), "LANG": "C.UTF-8"}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("GPTBUILDER_", "OPENAI_"))})  # the canaries
    done = subprocess.run(
        ["runuser", "-u", "nobody", "--", SYSTEM_PYTHON, "-B", str(folder / "driver.py"), json.dumps(options)],
        input=code, capture_output=True, text=True, env=env, cwd=folder, timeout=60, check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"the unprivileged driver failed:\n{done.stderr}")
    return SandboxResult(**json.loads(done.stdout))


@pytest.fixture(params=["server-user", "unprivileged"])
def sandbox(request: pytest.FixtureRequest) -> Run:
    """run(code, timeout=..., memory_mb=..., max_output_chars=...) in the python tool's sandbox."""

    def defaults(options: dict[str, float]) -> dict[str, float]:
        return {"timeout": 10, "memory_mb": 512, "max_output_chars": 20_000, **options}

    if request.param == "server-user":
        return lambda code, **options: run_python(code, **defaults(options))
    reason = _unprivileged_skip_reason()
    if reason and os.geteuid() == 0 and os.environ.get("GPTBUILDER_TEST_STRICT") == "1":
        pytest.fail(f"{reason} (GPTBUILDER_TEST_STRICT=1: as root, CI must run the sandbox as nobody too)", pytrace=False)
    if reason:
        pytest.skip(reason)
    folder = request.getfixturevalue("_unprivileged_package")
    return lambda code, **options: _run_unprivileged(folder, code, **defaults(options))


def host_processes_with(marker: str) -> list[int]:
    """Host pids whose command line holds `marker`."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read():
                        found.append(int(entry.name))
            except OSError:
                pass
    return found

