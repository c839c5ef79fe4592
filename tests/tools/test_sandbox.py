"""The Python sandbox, with real child processes: output, limits, isolation and the guard."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from gptbuilder.errors import ToolError
from gptbuilder.tools.sandbox import SandboxResult, cut_middle, run_python


def run(code: str, *, timeout: float = 10, memory_mb: int = 512, max_output_chars: int = 10_000) -> SandboxResult:
    """Run `code` in the sandbox with generous defaults."""
    return run_python(code, timeout=timeout, memory_mb=memory_mb, max_output_chars=max_output_chars)


def refused(result: SandboxResult, says: str) -> bool:
    """Whether the run failed with the guard's PermissionError saying `says`."""
    return result.exit_code == 1 and "PermissionError" in result.error and says in result.stderr


# --- output and errors ------------------------------------------------------------------------


def test_prints_output():
    result = run("import sys\nprint('hello', 6 * 7)\nprint('note', file=sys.stderr)")
    assert result.ok
    assert (result.stdout, result.stderr, result.exit_code) == ("hello 42\n", "note\n", 0)
    assert not result.timed_out and not result.truncated


def test_exceptions_give_the_traceback_of_the_users_code_only():
    result = run("def divide(a, b):\n    return a / b\n\nprint('first')\ndivide(1, 0)\n")
    assert result.stdout == "first\n"
    assert result.exit_code == 1
    assert result.error == "ZeroDivisionError: division by zero"
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert 'File "main.py", line 5, in <module>' in result.stderr
    assert 'File "main.py", line 2, in divide\n    return a / b' in result.stderr
    assert "<sandbox>" not in result.stderr and "<string>" not in result.stderr


def test_guard_frames_are_left_out_of_tracebacks():
    result = run("import os\nos.fork()")
    assert "<sandbox>" not in result.stderr and "guard" not in result.stderr
    assert result.stderr.count('File "') == 1


def test_syntax_errors_point_at_the_line():
    result = run("x = 1\ndef broken(:\n")
    assert result.error == "SyntaxError: invalid syntax"
    assert 'File "main.py", line 2' in result.stderr


def test_exit_status_is_kept():
    assert run("import sys; sys.exit(0)").ok
    result = run("import sys; sys.exit(3)")
    assert (result.exit_code, result.error) == (3, "exited with status 3")


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
    result = run("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))")
    assert refused(result, "resource.setrlimit is not allowed")


# --- processes --------------------------------------------------------------------------------


def test_fork_is_refused():
    assert refused(run("import os\nos.fork()"), "starting processes (os.fork) is not allowed in the python tool")


def test_fork_bomb_is_refused():
    started = time.monotonic()
    result = run("import os\nwhile True:\n    os.fork()", timeout=5)
    assert time.monotonic() - started < 5
    assert refused(result, "os.fork")


def test_subprocess_is_refused():
    result = run("import subprocess\nsubprocess.run(['ls'])")
    assert refused(result, "starting processes (subprocess.Popen) is not allowed")
    assert result.stdout == ""


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.system('echo hacked')",
        "import os\nos.execv('/bin/echo', ['echo', 'hacked'])",
        "import os\nos.posix_spawn('/bin/echo', ['echo', 'hacked'], {})",
        "import pty\npty.fork()",
        "import multiprocessing\np = multiprocessing.Process(target=print)\np.start()",
        "import _posixsubprocess\n_posixsubprocess.fork_exec()",
        "import sys\ndel sys.modules['_posixsubprocess']\nimport _posixsubprocess",
    ],
)
def test_every_way_to_start_a_process_is_refused(code: str):
    result = run(code)
    assert result.exit_code == 1 and "PermissionError" in result.error
    assert "hacked" not in result.stdout


def test_other_processes_cannot_be_signalled():
    assert refused(run("import os, signal\nos.kill(os.getppid(), signal.SIGTERM)"), "may not signal other processes")


def test_ctypes_is_refused():
    assert refused(run("import ctypes"), "importing ctypes is not allowed in the python tool")


def test_the_guard_cannot_be_switched_off():
    code = "import gc\nfor o in gc.get_objects():\n    if getattr(o, '__name__', '') == 'guard':\n"
    code += "        o.__defaults__ = None\n"
    assert refused(run(code), "changing __defaults__ is not allowed")
    assert refused(run("(lambda: 0).__code__.replace()"), "code.__new__ is not allowed")


# --- network ----------------------------------------------------------------------------------


@pytest.fixture
def listener():
    """A real TCP socket listening on loopback; yields its port."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    yield server
    server.close()


def test_connecting_to_a_listening_loopback_socket_is_refused(listener):
    port = listener.getsockname()[1]
    result = run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')")
    assert refused(result, "network access is not allowed in the python tool")
    assert result.stdout == ""
    with pytest.raises(TimeoutError):
        listener.accept()


@pytest.mark.parametrize(
    "code",
    [
        "import socket\nsocket.socket()",
        "import socket\nsocket.socket(socket.AF_UNIX)",
        "import socket\nsocket.getaddrinfo('example.com', 80)",
        "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/')",
    ],
)
def test_sockets_and_lookups_are_refused(code: str, listener):
    result = run(code.format(port=listener.getsockname()[1]))
    assert result.exit_code == 1
    assert "network access is not allowed in the python tool" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace without a user namespace needs root")
def test_as_root_the_child_has_its_own_empty_network_namespace():
    result = run("import socket\nprint(socket.if_nameindex())")
    assert result.network_namespace
    assert result.stdout == "[(1, 'lo')]\n"


# --- files and environment --------------------------------------------------------------------


def test_files_go_to_a_temporary_folder_that_is_removed(tmp_path: Path):
    code = "import os, tempfile\nopen('notes.txt', 'w').write('hi')\nos.makedirs('sub/dir')\n"
    code += "tempfile.NamedTemporaryFile(delete=False).write(b'x')\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))"
    result = run(code)
    workdir, listing = result.stdout.splitlines()
    assert "main.py" in listing and "notes.txt" in listing and "sub" in listing
    assert Path(workdir).name.startswith("gptbuilder-python-")
    assert not Path(workdir).exists()
    assert Path.cwd() != Path(workdir)


def test_each_run_starts_fresh():
    first = run("open('state.txt', 'w').write('1')\nimport os\nprint(os.getcwd())")
    second = run("import os\nprint(os.path.exists('state.txt'), os.getcwd())")
    assert second.stdout.startswith("False ")
    assert second.stdout.split()[1] != first.stdout.strip()


def test_writing_outside_the_working_folder_is_refused(tmp_path: Path):
    tmp_path = tmp_path / "outside"
    tmp_path.mkdir()
    target = tmp_path / "escaped.txt"
    for code in [
        f"open({str(target)!r}, 'w').write('x')",
        f"import os\nos.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)",
        "import os\nos.makedirs('a/b')\nos.chdir('a/b')\n" + f"open('../../../{'../' * 10}{str(target)[1:]}', 'w')",
        f"import os\nfd = os.open({str(tmp_path)!r}, os.O_RDONLY)\n"
        "os.open('escaped.txt', os.O_WRONLY | os.O_CREAT, dir_fd=fd)",
        f"import os\nos.symlink({str(tmp_path)!r}, 'link')\nopen('link/escaped.txt', 'w')",
        f"import sqlite3\nsqlite3.connect({str(target)!r})",
        f"import shutil\nshutil.copyfile('main.py', {str(target)!r})",
    ]:
        result = run(code)
        assert result.exit_code == 1 and "PermissionError" in result.error, code
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_changing_files_outside_is_refused(tmp_path: Path):
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    for code in [f"import os\nos.remove({str(victim)!r})", f"import os\nos.rename({str(victim)!r}, 'mine.txt')",
                 f"import os\nos.chmod({str(victim)!r}, 0o777)", f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
                 f"import os\nos.truncate({str(victim)!r}, 0)", f"import os\nos.utime({str(victim)!r}, (0, 0))"]:
        result = run(code)
        assert result.exit_code == 1 and "PermissionError" in result.error, code
    assert victim.read_text() == "precious"


def test_reading_outside_the_working_folder_and_the_standard_library_is_refused(tmp_path: Path):
    secret = tmp_path / ".env"
    secret.write_text("OPENAI_API_KEY=sk-on-disk")
    result = run(f"print(open({str(secret)!r}).read())")
    assert refused(result, "may only read its working folder and the standard library")
    assert "sk-on-disk" not in result.stdout
    assert run("import json, zoneinfo\nprint(zoneinfo.ZoneInfo('Europe/Paris'))").stdout == "Europe/Paris\n"


def test_other_processes_cannot_be_read():
    result = run("import os\nprint(open(f'/proc/{os.getppid()}/environ').read())")
    assert refused(result, "may not read other processes")
    assert run("print(len(open('/proc/self/status').read()) > 0)").stdout == "True\n"


def test_environment_variables_of_the_server_are_not_visible(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    monkeypatch.setenv("PYTHONSTARTUP", "/nonexistent.py")
    result = run("import os\nprint(sorted(os.environ))\nprint(os.environ.get('OPENAI_API_KEY'))")
    assert result.ok
    names, key = result.stdout.splitlines()
    assert key == "None"
    assert names == "['HOME', 'LANG', 'MALLOC_ARENA_MAX', 'PATH', 'TMPDIR']"
    assert "sk-parent-secret" not in result.stdout + result.stderr


def test_only_the_standard_library_is_importable():
    result = run("import pydantic")
    assert result.error == "ModuleNotFoundError: No module named 'pydantic'"
