"""The Python sandbox, with real child processes: output, limits, isolation, and what happens without bubblewrap.

The attacks (escapes tried against the old in-interpreter guard) live in tests/security/.
"""

from __future__ import annotations

import ast
import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from gptbuilder.errors import ToolError
from gptbuilder.tools.builtin import builtin_tool
from gptbuilder.tools.sandbox import (
    DISK_MB,
    UNSAFE_ENV,
    SandboxResult,
    cut_middle,
    require_sandbox,
    run_python,
    sandbox_status,
)


def run(code: str, *, timeout: float = 10, memory_mb: int = 512, max_output_chars: int = 10_000) -> SandboxResult:
    """Run `code` in the sandbox with generous defaults."""
    return run_python(code, timeout=timeout, memory_mb=memory_mb, max_output_chars=max_output_chars)


# --- output and errors ------------------------------------------------------------------------


def test_prints_output():
    result = run("import sys\nprint('hello', 6 * 7)\nprint('note', file=sys.stderr)")
    assert result.ok
    assert (result.stdout, result.stderr, result.exit_code) == ("hello 42\n", "note\n", 0)
    assert not result.timed_out and not result.truncated
    assert result.sandbox == "bubblewrap"


def test_exceptions_give_the_traceback_of_the_users_code_only():
    result = run("def divide(a, b):\n    return a / b\n\nprint('first')\ndivide(1, 0)\n")
    assert result.stdout == "first\n"
    assert result.exit_code == 1
    assert result.error == "ZeroDivisionError: division by zero"
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert 'File "main.py", line 5, in <module>' in result.stderr
    assert 'File "main.py", line 2, in divide\n    return a / b' in result.stderr
    assert "<sandbox>" not in result.stderr and "<string>" not in result.stderr


def test_bootstrap_frames_are_left_out_of_tracebacks():
    result = run("raise ValueError('mine')")
    assert "<sandbox>" not in result.stderr and "_setup" not in result.stderr
    assert result.stderr.count('File "') == 1
    assert result.error == "ValueError: mine"


def test_syntax_errors_point_at_the_line():
    result = run("x = 1\ndef broken(:\n")
    assert result.error == "SyntaxError: invalid syntax"
    assert 'File "main.py", line 2' in result.stderr


def test_exit_status_is_kept():
    assert run("import sys; sys.exit(0)").ok
    result = run("import sys; sys.exit(3)")
    assert (result.exit_code, result.error) == (3, "exited with status 3")


def test_death_by_signal_is_reported_as_the_signal():
    result = run("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)")
    assert (result.exit_code, result.error) == (-15, "was killed by SIGTERM")


def test_user_code_runs_as_main_with_its_own_argv():
    result = run("import sys\nprint(__name__, sys.argv)\nclass A: pass\nprint(A.__module__)")
    assert result.stdout == "__main__ ['main.py']\n__main__\n"


def test_code_that_is_not_valid_text_is_refused_before_running():
    with pytest.raises(ToolError, match="the code is not valid text"):
        run("print('\ud800')")  # a lone surrogate: not encodable


def test_no_input_is_available():
    assert "EOFError" in run("input()").error


# --- limits -----------------------------------------------------------------------------------


def test_infinite_loop_is_killed_by_the_timeout():
    started = time.monotonic()
    result = run("print('going', flush=True)\nwhile True:\n    pass", timeout=1)
    assert time.monotonic() - started < 5
    assert result.timed_out and result.exit_code is None
    assert result.stdout == "going\n"  # what was printed before the kill is kept
    assert "timed out after 1 s" in result.error


def test_sleeping_past_the_timeout_is_killed_too():
    started = time.monotonic()
    assert run("import time; time.sleep(60)", timeout=1).timed_out
    assert time.monotonic() - started < 5


def test_memory_error_is_reported_and_the_process_survives_it():
    result = run("data = bytearray(10 * 1024 ** 3)")
    assert result.exit_code == 1
    assert result.error == "ran out of memory (limit 512 MB); use less data per call"
    assert result.stderr.rstrip().endswith("MemoryError")
    survived = run("try:\n    bytearray(10 * 1024 ** 3)\nexcept MemoryError:\n    print('survived')")
    assert survived.ok and survived.stdout == "survived\n"


def test_large_output_is_truncated_keeping_both_ends():
    started = time.monotonic()
    result = run("print('START' + 'x' * 10_000_000 + 'END')", max_output_chars=1000)
    assert time.monotonic() - started < 10
    assert result.ok and result.truncated
    assert result.stdout.startswith("STARTx") and result.stdout.endswith("xEND\n")
    assert "characters omitted ...]" in result.stdout
    assert len(result.stdout) < 1100


def test_many_lines_of_output_are_truncated():
    result = run("for i in range(200_000):\n    print(i)", max_output_chars=200)
    assert result.truncated
    assert result.stdout.startswith("0\n1\n2\n") and result.stdout.endswith("199999\n")


def test_output_within_the_budget_is_untouched():
    text = "é" * 500  # multi-byte characters count as characters, not bytes
    result = run(f"print({text!r}, end='')", max_output_chars=500)
    assert (result.stdout, result.truncated) == (text, False)


def test_cut_middle_marks_what_it_left_out():
    assert cut_middle("abcdef", 10) == "abcdef"
    assert cut_middle("a" * 10 + "b" * 10, 10) == "aaaaa\n[... about 10 characters omitted ...]\nbbbbb"
    assert cut_middle("head", 4, tail="tail", skipped=100) == "he\n[... about 104 characters omitted ...]\nil"


def test_threads_still_work():
    code = "import threading\nout = []\nts = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]\n"
    code += "[t.start() for t in ts]\n[t.join() for t in ts]\nprint(sorted(out))"
    assert run(code).stdout == "[0, 1, 2, 3, 4, 5, 6, 7]\n"


def test_limits_cannot_be_raised_from_inside():
    code = "import resource\nprint(resource.getrlimit(resource.RLIMIT_AS))\n"
    code += "resource.setrlimit(resource.RLIMIT_AS, (-1, -1))"
    result = run(code, memory_mb=256)
    assert result.stdout == f"({256 * 1024 * 1024}, {256 * 1024 * 1024})\n"
    assert result.error == "ValueError: not allowed to raise maximum limit"


def test_cpu_time_is_limited_per_process():
    code = "import resource\nprint(resource.getrlimit(resource.RLIMIT_CPU), resource.getrlimit(resource.RLIMIT_FSIZE))"
    assert run(code, timeout=3).stdout == f"(4, 5) ({DISK_MB * 1024 * 1024}, {DISK_MB * 1024 * 1024})\n"


# --- processes --------------------------------------------------------------------------------


def test_the_code_may_start_python_itself_but_no_other_program_exists():
    code = "import subprocess, sys\nprint(subprocess.run([sys.executable, '-c', 'print(2 + 2)'], "
    code += "capture_output=True, text=True).stdout, end='')\nsubprocess.run(['sh', '-c', 'echo hacked'])"
    result = run(code)
    assert result.stdout == "4\n"
    assert result.error == "FileNotFoundError: [Errno 2] No such file or directory: 'sh'"


def test_processes_are_capped():
    code = "import os, time\nn = 0\ntry:\n    while n < 500:\n        if os.fork() == 0:\n"
    code += "            time.sleep(30)\n            os._exit(0)\n        n += 1\nexcept OSError as exc:\n"
    code += "    print(n, exc.errno)"
    started = time.monotonic()
    result = run(code, timeout=5)
    assert time.monotonic() - started < 5  # the sleeping children die with the sandbox, they do not hold the call
    count, errno = result.stdout.split()
    assert 0 < int(count) <= 40 and errno == "11"


# --- network ----------------------------------------------------------------------------------


@pytest.fixture
def listener():
    """A real TCP socket listening on loopback; yields it."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    yield server
    server.close()


def test_the_hosts_loopback_is_out_of_reach(listener):
    port = listener.getsockname()[1]
    result = run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')")
    assert result.error == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert result.stdout == ""
    with pytest.raises(TimeoutError):
        listener.accept()


def test_the_only_network_interface_is_an_unconnected_loopback():
    result = run("import socket\nprint(socket.if_nameindex())\nsocket.getaddrinfo('example.com', 80)")
    assert result.stdout == "[(1, 'lo')]\n"
    assert result.error.startswith("socket.gaierror")


# --- files and environment --------------------------------------------------------------------


def test_files_go_to_a_private_tmp_that_is_gone_afterwards():
    name = f"notes-{uuid.uuid4().hex}.txt"
    code = f"import os, tempfile\nopen({name!r}, 'w').write('hi')\nos.makedirs('sub/dir')\n"
    code += "tempfile.NamedTemporaryFile(delete=False).write(b'x')\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))"
    result = run(code)
    workdir, listing = result.stdout.splitlines()
    assert workdir == "/tmp"
    assert "main.py" in listing and name in listing and "sub" in listing
    assert not (Path("/tmp") / name).exists()  # the host's /tmp never saw it


def test_each_run_starts_fresh():
    run("open('state.txt', 'w').write('1')")
    assert run("import os\nprint(os.path.exists('state.txt'))").stdout == "False\n"


def test_files_outside_are_neither_visible_nor_writable(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / ".env"
    secret.write_text("OPENAI_API_KEY=sk-on-disk")
    target = outside / "escaped.txt"
    for code in [f"print(open({str(secret)!r}).read())", f"open({str(target)!r}, 'w').write('x')",
                 f"import os\nos.remove({str(secret)!r})", f"import sqlite3\nsqlite3.connect({str(target)!r})"]:
        result = run(code)
        assert not result.ok, code
        assert "sk-on-disk" not in result.stdout + result.stderr
    assert sorted(p.name for p in outside.iterdir()) == [".env"]
    assert secret.read_text() == "OPENAI_API_KEY=sk-on-disk"


def test_the_filesystem_outside_tmp_is_read_only():
    code = "import os\nfor path in ['/x', '/usr/x', '/usr/lib/x', '/dev/x', '/dev/shm/x', '/etc/x']:\n"
    code += "    try:\n        open(path, 'w')\n        print('wrote', path)\n    except OSError as exc:\n"
    code += "        print(exc.errno)"
    assert set(run(code).stdout.split()) <= {"13", "30"}  # EACCES, EROFS


def test_the_standard_library_works_and_nothing_else_is_importable():
    assert run("import json, zoneinfo, sqlite3\nprint(zoneinfo.ZoneInfo('Europe/Paris'))").stdout == "Europe/Paris\n"
    assert run("import pydantic").error == "ModuleNotFoundError: No module named 'pydantic'"


def test_only_the_sandboxs_own_processes_are_visible():
    result = run(f"import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
                 f"print(os.path.exists('/proc/{os.getpid()}'))")
    pids, server_visible = result.stdout.splitlines()
    assert pids == "[1, 2]" and server_visible == "False"


def test_environment_variables_of_the_server_are_not_visible(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    monkeypatch.setenv("PYTHONSTARTUP", "/nonexistent.py")
    result = run("import os\nprint(sorted(os.environ))\nprint(os.environ.get('OPENAI_API_KEY'))")
    assert result.ok
    names, key = result.stdout.splitlines()
    assert key == "None"
    assert set(ast.literal_eval(names)) <= {"HOME", "LANG", "LD_LIBRARY_PATH", "MALLOC_ARENA_MAX", "PATH", "PWD", "TMPDIR"}
    assert "sk-parent-secret" not in result.stdout + result.stderr


# --- without bubblewrap -----------------------------------------------------------------------


def test_without_bubblewrap_the_python_tool_refuses_to_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap here
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    status = sandbox_status()
    assert (status.kind, status.usable) == ("unavailable", False)
    with pytest.raises(ToolError) as caught:
        builtin_tool("python")
    message = str(caught.value)
    assert "bubblewrap (bwrap) is not installed" in message
    assert "apt-get install bubblewrap" in message and UNSAFE_ENV in message
    with pytest.raises(ToolError, match="the python tool needs a sandbox"):
        run("print(1)")


def test_a_bubblewrap_that_cannot_make_namespaces_is_not_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && { echo 'bubblewrap 0.0'; exit 0; }\n"
                    "echo 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    status = sandbox_status()
    assert status.kind == "unavailable" and status.version == "bubblewrap 0.0"
    assert "cannot build a sandbox here" in status.detail
    assert "No permissions to create new namespace" in status.detail


def test_the_operator_may_opt_in_to_unsafe_local_execution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(UNSAFE_ENV, "1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    assert require_sandbox().kind == "unsafe-local"
    assert "UNSANDBOXED" in sandbox_status().detail
    result = run("import os\nprint(os.getcwd())\nprint(os.environ.get('OPENAI_API_KEY'))")
    assert result.sandbox == "unsafe-local"
    workdir, key = result.stdout.splitlines()
    assert Path(workdir).name.startswith("gptbuilder-python-") and not Path(workdir).exists()
    assert key == "None"
    assert run("while True:\n    pass", timeout=1).timed_out
    assert builtin_tool("python").invoke({"code": "print(6 * 7)"}) == "42"


def test_a_server_holding_more_than_1024_descriptors_still_runs_code():
    """A busy server has sockets and files past descriptor 1023, where select() fails; the sandbox must not."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2048), hard))
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        result = run("print(6 * 7)")
        assert result.stdout.strip() == "42" and result.exit_code == 0
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
