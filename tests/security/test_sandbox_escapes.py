"""The python tool's sandbox against the escapes of issue 12, each of which beat the old in-interpreter guard.

Every test runs the attack the way the issue did and then checks, from the host, that nothing got out:
no secret in the output, no file changed, no process left, no connection made. Each runs as the server's
user and, where the machine allows, as an unprivileged user (see conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from gptbuilder.tools.builtin import builtin_tool

from .conftest import ROOT, Run, Victim, host_processes_with


def leaked(victim: Victim, text: str) -> bool:
    """Whether any of the victim's secrets shows up in `text`."""
    return victim.canary in text


def test_the_servers_environment_cannot_be_read_through_proc_self_root(sandbox: Run, victim: Victim):
    code = f"""
import glob, os
read = []
for path in [f"/proc/self/root/proc/{{os.getppid()}}/environ", "/proc/self/root/proc/{os.getpid()}/environ",
             "/proc/{os.getpid()}/environ", *glob.glob("/proc/*/environ"), *glob.glob("/proc/self/root/proc/*/environ")]:
    try:
        read.append(open(path, "rb").read().decode("utf-8", "replace"))
    except OSError as exc:
        print(path, type(exc).__name__)
print("READ", read)
"""
    result = sandbox(code)
    assert not leaked(victim, result.stdout + result.stderr)
    assert f"/proc/{os.getpid()}/environ FileNotFoundError" in result.stdout  # the server is not even there
    assert "READ [" in result.stdout


def test_nothing_can_be_planted_in_the_gpts_folder_through_dir_fd(sandbox: Run, victim: Victim):
    before = sorted(p.name for p in victim.gpts.iterdir())
    relative = str(victim.gpts / "evil.yaml").lstrip("/")
    code = f"""
import os
for anchor in ["/proc/self/root", "/"]:
    root = os.open(anchor, os.O_RDONLY)
    try:
        fd = os.open({relative!r}, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=root)
        os.write(fd, b"name: Evil\\ninstructions: pwned\\n")
        print("PLANTED")
    except OSError as exc:
        print(anchor, type(exc).__name__)
"""
    result = sandbox(code)
    assert "PLANTED" not in result.stdout
    assert result.stdout.count("FileNotFoundError") == 2
    assert sorted(p.name for p in victim.gpts.iterdir()) == before


def test_tampering_with_function_defaults_opens_nothing(sandbox: Run, victim: Victim):
    # The old guard kept its settings in __kwdefaults__; gc found it and rewrote them. Now there is no guard in
    # the interpreter to switch off, and the files are simply not there.
    code = f"""
import gc
changed = 0
for obj in gc.get_objects():
    if callable(obj) and getattr(obj, "__kwdefaults__", None):
        try:
            obj.__kwdefaults__ = None
            changed += 1
        except (AttributeError, TypeError):
            pass
print("CHANGED", changed > 0)
for path in [{str(victim.secrets)!r}, {str(victim.database)!r}]:
    try:
        print(open(path, "rb").read())
    except OSError as exc:
        print(type(exc).__name__)
try:
    open({str(victim.gpts / "evil.yaml")!r}, "w").write("name: Evil")
    print("PLANTED")
except OSError as exc:
    print(type(exc).__name__)
"""
    result = sandbox(code)
    assert result.stdout.splitlines() == ["CHANGED True", *["FileNotFoundError"] * 3]
    assert not leaked(victim, result.stdout + result.stderr)
    assert not (victim.gpts / "evil.yaml").exists()


ALLOWED_TOP = {"dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "tmp", "usr"}


def test_the_filesystem_holds_only_the_python_runtime(sandbox: Run, victim: Victim):
    code = """
import json, os, sys
paths = []
for base, dirs, files in os.walk("/"):
    if base in ("/proc", "/dev"):
        dirs[:] = []
        continue
    paths += [os.path.join(base, name) for name in dirs + files]
print(json.dumps({"listdir": sorted(os.listdir("/")), "scandir": sorted(e.name for e in os.scandir("/")),
                  "paths": paths, "stdlib": os.path.dirname(os.__file__)}))
"""
    result = sandbox(code, max_output_chars=5_000_000)
    seen = json.loads(result.stdout)
    assert seen["listdir"] == seen["scandir"]
    assert set(seen["listdir"]) <= ALLOWED_TOP and {"root", "home", "work", "srv", "var"}.isdisjoint(seen["listdir"])
    stdlib = seen["stdlib"]
    folders = {"/dev", "/etc", "/proc", "/usr", "/usr/bin", "/usr/lib", "/usr/share"}
    runtime = ("/usr/bin/python3", stdlib, "/lib", "/usr/lib/", "/etc/ld.so.cache", "/usr/share/zoneinfo", "/tmp")
    strays = [p for p in seen["paths"] if p not in folders and not p.startswith(runtime)]
    assert strays == []
    everything = "\n".join(seen["paths"])
    for secret_place in [str(ROOT), str(victim.root), "site-packages/", "dist-packages/", ".venv", ".pyenv"]:
        assert secret_place not in everything
    assert f"{stdlib}/os.py" in seen["paths"]  # the walk did see the runtime


def test_processes_started_with_setsid_do_not_outlive_the_call(sandbox: Run):
    marker = f"escape-{uuid.uuid4().hex}"
    sleeper = "import time; time.sleep(60)"
    code = f"""
import os, subprocess, sys
# subprocess with start_new_session calls _posixsubprocess.fork_exec(..., call_setsid=True), the issue's escape
subprocess.Popen([sys.executable, "-c", {sleeper!r}, {marker!r}], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:  # and a classic double-forked daemon
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", {sleeper!r}, {marker!r}])
    os._exit(0)
import time
time.sleep(0.3)
print(sum(1 for pid in os.listdir("/proc") if pid.isdigit()
          and {marker!r}.encode() in open(f"/proc/{{pid}}/cmdline", "rb").read()))
"""
    result = sandbox(code)
    assert result.stdout == "2\n"  # both were running inside
    assert host_processes_with(marker) == []  # and are gone now the call has returned


def test_a_fork_bomb_is_contained_and_gone_after_the_call(sandbox: Run):
    marker = f"bomb-{uuid.uuid4().hex}"
    bomb = "import os\\nwhile True:\\n    try:\\n        os.fork()\\n    except OSError:\\n        pass"
    code = f"import os, sys\nos.execv(sys.executable, [sys.executable, '-c', '{bomb}', '{marker}'])"
    started = time.monotonic()
    result = sandbox(code, timeout=2)
    assert time.monotonic() - started < 10
    assert result.timed_out
    assert host_processes_with(marker) == []


@pytest.fixture
def loopback() -> Iterator[tuple[socket.socket, socket.socket, str]]:
    """A TCP listener on 127.0.0.1 and a listening abstract unix socket (both bound to this network namespace)."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    tcp.settimeout(0.2)
    name = f"\0gptbuilder-test-{uuid.uuid4().hex}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(name)
    unix.listen()
    unix.settimeout(0.2)
    yield tcp, unix, name
    tcp.close()
    unix.close()


def test_no_network_reaches_the_host(sandbox: Run, loopback: tuple[socket.socket, socket.socket, str]):
    tcp, unix, name = loopback
    port = tcp.getsockname()[1]
    code = f"""
import socket
print(socket.if_nameindex())
for family, address in [(socket.AF_INET, ("127.0.0.1", {port})), (socket.AF_UNIX, {name!r})]:
    try:
        socket.socket(family, socket.SOCK_STREAM).connect(address)
        print("CONNECTED")
    except OSError as exc:
        print(type(exc).__name__)
"""
    result = sandbox(code)
    assert result.stdout.splitlines() == ["[(1, 'lo')]", "ConnectionRefusedError", "ConnectionRefusedError"]
    for server in (tcp, unix):
        with pytest.raises(TimeoutError):
            server.accept()


def test_entering_another_network_namespace_is_impossible(sandbox: Run, loopback: tuple[socket.socket, socket.socket, str]):
    tcp, _, _ = loopback
    port = tcp.getsockname()[1]
    code = f"""
import ctypes, glob, os, socket
libc = ctypes.CDLL(None, use_errno=True)
print("own user namespace", libc.unshare(0x10000000) == 0)  # CLONE_NEWUSER: capabilities over a new namespace
entered = []
for path in glob.glob("/proc/*/ns/net") + glob.glob("/proc/self/root/proc/*/ns/net"):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        continue
    if libc.setns(fd, 0x40000000) == 0 and socket.if_nameindex() != [(1, "lo")]:  # CLONE_NEWNET
        entered.append(path)
print("entered", entered)
try:
    os.execv("/usr/bin/nsenter", ["nsenter", "--net=/proc/1/ns/net", "true"])
except OSError as exc:
    print("nsenter", type(exc).__name__)
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=1)
    print("CONNECTED")
except OSError as exc:
    print(type(exc).__name__)
"""
    result = sandbox(code)
    lines = result.stdout.splitlines()
    assert lines[1:] == ["entered []", "nsenter FileNotFoundError", "ConnectionRefusedError"]
    with pytest.raises(TimeoutError):
        tcp.accept()


def test_filling_the_disk_stops_at_the_total_quota(sandbox: Run):
    code = """
import os
chunk = b"x" * (1 << 20)
written = 0
try:
    for n in range(10):  # many files: the quota is on the total, not per file
        with open(f"fill{n}", "wb") as handle:
            for _ in range(30):
                handle.write(chunk)
                written += 1
finally:
    print("MB", written)
"""
    started = time.monotonic()
    result = sandbox(code)
    assert time.monotonic() - started < 10
    written = int(result.stdout.split()[1])
    assert 90 <= written <= 100
    assert result.error.startswith("filled its 100 MB of private disk space")
    assert "No space left on device" in result.error


def test_the_database_cannot_be_attached(sandbox: Run, victim: Victim):
    digest = hashlib.sha256(victim.database.read_bytes()).hexdigest()
    code = f"""
import sqlite3
db = sqlite3.connect(":memory:")
for path in [{str(victim.database)!r}, "/proc/self/root{victim.database}"]:
    try:
        db.execute("ATTACH DATABASE ? AS stolen", (path,))
        print(db.execute("SELECT value FROM stolen.settings").fetchall())
    except sqlite3.Error as exc:
        print("FAILED", exc)
"""
    result = sandbox(code)
    assert not leaked(victim, result.stdout + result.stderr)
    assert result.stdout.splitlines() == ["FAILED unable to open database: " + p
                                          for p in [str(victim.database), f"/proc/self/root{victim.database}"]]
    assert hashlib.sha256(victim.database.read_bytes()).hexdigest() == digest


def test_environment_variables_never_reach_the_code(sandbox: Run, victim: Victim):
    code = """
import os
print(dict(os.environ))
for path in ["/proc/self/environ", "/proc/1/environ"]:
    try:
        print(open(path, "rb").read())
    except OSError as exc:
        print(type(exc).__name__)
"""
    result = sandbox(code)
    assert result.ok
    assert not leaked(victim, result.stdout + result.stderr)
    assert "GPTBUILDER_ADMIN_API_KEYS" not in result.stdout and "OPENAI_API_KEY" not in result.stdout


def test_signals_reach_only_the_sandboxs_own_processes(sandbox: Run):
    # kill(-1) hits every process the caller may signal: without a PID namespace, all of the same user's.
    uid = 65534 if os.geteuid() == 0 else None
    bystander = subprocess.Popen(["sleep", "30"], user=uid, start_new_session=True)
    try:
        code = "import os, signal, time\nchild = os.fork()\nif child == 0:\n    time.sleep(30)\n    os._exit(0)\n"
        code += "os.kill(-1, signal.SIGKILL)\nprint('own child killed:', os.waitpid(child, 0)[1] == signal.SIGKILL)"
        result = sandbox(code)
        assert result.stdout == "own child killed: True\n"
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_the_python_tool_itself_keeps_the_servers_secrets(victim: Victim):
    tool = builtin_tool("python")
    code = ("import os\nprint(open(f'/proc/self/root/proc/{os.getppid()}/environ').read())")
    answer = tool.invoke({"code": code})
    assert "FileNotFoundError" in answer or "PermissionError" in answer
    assert not leaked(victim, answer)
    planted = tool.invoke({"code": f"open({str(victim.gpts / 'evil.yaml')!r}, 'w').write('name: Evil')"})
    assert "FileNotFoundError" in planted and not (victim.gpts / "evil.yaml").exists()


def test_the_sandbox_module_is_what_the_unprivileged_runs_use():
    # The unprivileged runs copy gptbuilder/tools/sandbox.py; make sure it still imports nothing else of ours.
    source = (ROOT / "gptbuilder" / "tools" / "sandbox.py").read_text()
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("from ..", "from ."))}
    assert imports == {"..errors"}
