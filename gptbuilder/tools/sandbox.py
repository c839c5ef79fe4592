"""Run untrusted Python in a short-lived, limited child process: the engine of the `python` tool.

Layers, each on its own when the others are missing:

- the kernel: resource limits (CPU seconds, address space, file size, open files, processes), a new
  session killed as a whole on the wall-clock timeout, and a new, empty network namespace where the
  kernel allows it (as root, or through a user namespace);
- the interpreter: `-I -S` (no environment variables, user site or site-packages: the standard library
  only), an environment holding nothing of ours, a fresh working folder deleted afterwards, and an
  audit hook installed before the user's code runs that refuses sockets, processes, ctypes, writes
  outside the working folder and reads outside it and the standard library.

The audit hook is a guard, not a security boundary (CPython's own documentation says so); the kernel
layers are. Notably, RLIMIT_NPROC never applies to root (the kernel exempts uid 0, even inside a user
namespace), so as root the guard alone stops `os.fork`. For hostile users, also run the server as an
unprivileged user inside a container.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO

from ..errors import ToolError

CODE_FILE = "main.py"
MAX_FILE_MB = 100
MAX_OPEN_FILES = 128
EXTRA_PROCESSES = 32  # tasks (threads count too) a non-root child may add before fork fails
_SETUP_FAILED = 70


@dataclass(frozen=True)
class SandboxResult:
    """What one run printed and how it ended."""

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    truncated: bool
    error: str | None
    network_namespace: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the code ran to the end without an error."""
        return self.error is None


def run_python(code: str, *, timeout: float, memory_mb: int, max_output_chars: int) -> SandboxResult:
    """Run `code` in a fresh sandboxed interpreter and return its output, truncated to the budget."""
    if os.name != "posix":
        raise ToolError("the python tool needs Linux or macOS (it relies on POSIX resource limits)")
    if timeout <= 0 or memory_mb <= 0 or max_output_chars <= 0:
        raise ToolError("timeout, memory_mb and max_output_chars must be positive")
    try:
        source = code.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(f"the code is not valid text ({exc.reason} at character {exc.start}); resend it") from None
    with tempfile.TemporaryDirectory(prefix="gptbuilder-python-") as tmp:
        workdir = os.path.realpath(tmp)
        with open(os.path.join(workdir, CODE_FILE), "wb") as handle:
            handle.write(source)
        return _run(workdir, timeout=timeout, memory_mb=memory_mb, max_output_chars=max_output_chars)


def _run(workdir: str, *, timeout: float, memory_mb: int, max_output_chars: int) -> SandboxResult:
    status_read, status_write = os.pipe()
    cpu_seconds = int(timeout) + 1
    argv = [
        sys.executable, "-I", "-S", "-B", "-u", "-X", "utf8", "-c", _LAUNCH, _BOOTSTRAP,
        str(status_write), workdir, str(cpu_seconds), str(memory_mb * 1024 * 1024),
        str(MAX_FILE_MB * 1024 * 1024), str(MAX_OPEN_FILES), str(EXTRA_PROCESSES),
    ]  # fmt: skip
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "MALLOC_ARENA_MAX": "2",  # glibc reserves 64 MB of address space per thread arena otherwise
    }
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=(status_write,),
        )
    except OSError as exc:
        os.close(status_read)
        raise ToolError(f"could not start the Python sandbox ({sys.executable}): {exc}") from exc
    finally:
        os.close(status_write)
    keep = max_output_chars * 4  # bytes: enough for max_output_chars characters at each end
    out, err = _Capture(proc.stdout, keep), _Capture(proc.stderr, keep)
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(proc.pid)
        proc.wait()
        out.join()
        err.join()
        with os.fdopen(status_read, "rb") as status_file:
            status = status_file.read(64)
    duration = time.monotonic() - started
    stdout, out_cut = out.text(max_output_chars)
    stderr, err_cut = err.text(max_output_chars)
    exit_code = None if timed_out else proc.returncode
    error = _describe(exit_code, stderr, timed_out=timed_out, timeout=timeout, memory_mb=memory_mb, cpu=cpu_seconds)
    return SandboxResult(
        stdout=stdout,
        stderr=stderr,
        exit_code=exit_code,
        timed_out=timed_out,
        truncated=out_cut or err_cut,
        error=error,
        network_namespace=b"netns=1" in status,
        duration_s=duration,
    )


def _kill_group(pgid: int) -> None:
    # The child leads its own session, so this also ends anything it managed to start.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _describe(
    exit_code: int | None, stderr: str, *, timed_out: bool, timeout: float, memory_mb: int, cpu: int
) -> str | None:
    """One line saying why a run failed, or None when it succeeded."""
    if timed_out:
        return f"timed out after {timeout:g} s and was stopped; make the code faster or do less per call"
    if exit_code == 0:
        return None
    last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    if last.startswith("MemoryError"):
        return f"ran out of memory (limit {memory_mb} MB); use less data per call"
    if exit_code == _SETUP_FAILED and last.startswith("sandbox setup failed"):
        return last
    if exit_code is not None and exit_code < 0:
        signum = -exit_code
        if signum == signal.SIGXCPU:
            return f"used more than {cpu} s of CPU time and was stopped"
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        if signum in (signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS):
            return f"was killed by {name}, probably for using too much memory (limit {memory_mb} MB)"
        return f"was killed by {name}"
    return last or f"exited with status {exit_code}"


class _Capture:
    """Drains one pipe in a thread, keeping its first and last bytes within a budget."""

    def __init__(self, stream: IO[bytes], keep: int):
        self._fd = stream.fileno()
        self._stream = stream
        self._keep = keep
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0
        self._thread = threading.Thread(target=self._drain, name="sandbox-output", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while chunk := os.read(self._fd, 65536):
            self._total += len(chunk)
            room = self._keep - len(self._head)
            if room > 0:
                self._head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self._tail += chunk
                if len(self._tail) > 2 * self._keep:
                    del self._tail[: len(self._tail) - self._keep]

    def join(self) -> None:
        self._thread.join(timeout=5)
        if not self._thread.is_alive():  # else a straggler still holds the pipe: leave the fd to it
            self._stream.close()

    def text(self, limit: int) -> tuple[str, bool]:
        """The captured text within `limit` characters, and whether anything was cut out."""
        kept_tail = self._tail[-self._keep :]
        dropped = self._total - len(self._head) - len(kept_tail)
        if dropped <= 0:  # nothing skipped: decode in one piece so no character is split
            head, tail = (self._head + self._tail).decode("utf-8", errors="replace"), ""
        else:
            head, tail = self._head.decode("utf-8", errors="replace"), kept_tail.decode("utf-8", errors="replace")
        if not tail and len(head) <= limit:
            return head, False
        return cut_middle(head, limit, tail=tail, skipped=max(dropped, 0)), True


def cut_middle(text: str, limit: int, *, tail: str = "", skipped: int = 0) -> str:
    """Keep the start of `text` and the end of `tail` (or of `text`) within about `limit` characters."""
    end = tail or text
    first, last = limit - limit // 2, limit // 2
    omitted = len(text) + len(tail) + skipped - first - min(last, len(end))
    if omitted <= 0:
        return text + tail
    marker = f"\n[... about {omitted:,} characters omitted ...]\n"
    return text[:first] + marker + (end[-last:] if last else "")


# The bootstrap travels as an argument so its frames carry a name tracebacks can leave out.
_LAUNCH = "import sys; exec(compile(sys.argv.pop(1), '<sandbox>', 'exec'))"

# Runs in the child before the user's code: isolate, limit, guard, then run main.py as __main__.
# Only this text is trusted there, so the guard binds everything it uses as defaults (fixed once
# set: the guard refuses changes to __defaults__ and __code__) and reads no module globals.
_BOOTSTRAP = r'''
import os, sys, resource, stat, types, traceback, linecache

def _unshare_network():
    if hasattr(os, "unshare"):
        for flags in (os.CLONE_NEWNET, os.CLONE_NEWUSER | os.CLONE_NEWNET):
            try:
                os.unshare(flags)
                return True
            except OSError:
                pass
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return any(libc.unshare(flags) == 0 for flags in (0x40000000, 0x10000000 | 0x40000000))
    except Exception:
        return False
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] in ("ctypes", "_ctypes")]:
            del sys.modules[name]

def _tasks_of(uid):
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir("/proc/" + entry.name + "/task"))
            except OSError:
                pass
    return count

def _limit(kind, soft, hard=None):
    hard = soft if hard is None else hard
    current = resource.getrlimit(kind)[1]
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(kind, (soft, hard))

def _make_guard(workdir, readable):
    def resolve(path, dir_fd=None, *, _getcwd=os.getcwd, _fspath=os.fspath, _readlink=os.readlink,
                _isinstance=isinstance, _int=int, _bytes=bytes, _str=str):
        if _isinstance(path, _int):
            return _readlink("/proc/self/fd/" + _str(path)), False
        path = _fspath(path)
        if _isinstance(path, _bytes):
            path = path.decode("utf-8", "surrogateescape")
        path = _str.__str__(path)
        if not path.startswith("/"):
            base = _getcwd() if dir_fd is None or dir_fd < 0 else _readlink("/proc/self/fd/" + _str(dir_fd))
            path = base + "/" + path
        parts, climbs = [], False
        for part in path.split("/"):
            if part == "..":
                climbs = True
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        return "/" + "/".join(parts), climbs

    def within(path, roots):
        for root in roots:
            if path == root or path.startswith(root + "/"):
                return True
        return False

    def check_write(path, dir_fd=None, *, _resolve=resolve, _within=within, _roots=(workdir,),
                    _Denied=PermissionError):
        where, climbs = _resolve(path, dir_fd)
        if where in ("/dev/null", "/dev/stdout", "/dev/stderr"):
            return
        if climbs or not _within(where, _roots):
            raise _Denied("the python tool may only change files in its working folder, not " + where)

    def guard(event, args, *, _resolve=resolve, _within=within, _check_write=check_write,
              _workdir=(workdir,), _readable=readable, _pid=os.getpid(), _stat=os.stat,
              _isdir=stat.S_ISDIR, _isinstance=isinstance, _int=int, _str=str, _OSError=OSError,
              _Denied=PermissionError,
              _write=os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
        if event == "open":
            path, mode, flags = args
            if path is None or _isinstance(path, _int):
                return
            writing = (_isinstance(mode, _str) and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) \
                or (_isinstance(flags, _int) and flags & _write)
            if writing:
                return _check_write(path)
            where = _resolve(path)[0]
            if _within(where, _workdir):
                return
            if where.startswith("/proc/"):
                owner = where.split("/")[2]
                if owner == "self" or owner == _str(_pid):
                    return
                raise _Denied("the python tool may not read other processes: " + where)
            if mode is None:  # os.open: no directory handles outside, they would anchor dir_fd= writes
                try:
                    is_dir = _isdir(_stat(where).st_mode)
                except _OSError:
                    is_dir = False
                if is_dir:
                    raise _Denied("the python tool may not open folders outside its working folder: " + where)
            if not _within(where, _readable):
                raise _Denied("the python tool may only read its working folder and the standard library, not "
                              + where)
        elif event == "import":
            top = _str.split(_str.__str__(args[0]), ".")[0]
            if top in {"ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_xxinterpchannels",
                       "_testcapi", "_testinternalcapi", "_posixshmem", "_dbm", "_gdbm", "readline"}:
                raise _Denied("importing " + top + " is not allowed in the python tool")
        elif event in {"os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
                       "subprocess.Popen", "os.startfile", "pty.spawn"}:
            raise _Denied("starting processes (" + event + ") is not allowed in the python tool; "
                          "do the work in this process")
        elif event.startswith("socket."):
            raise _Denied("network access is not allowed in the python tool (" + event + ")")
        elif event.startswith("ctypes."):
            raise _Denied("ctypes and native code are not allowed in the python tool")
        elif event in {"os.kill", "os.killpg"}:
            if event == "os.killpg" or args[0] != _pid:
                raise _Denied("the python tool may not signal other processes")
        elif event in {"os.symlink", "os.link"}:
            raise _Denied("creating links is not allowed in the python tool")
        elif event in {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.utime"}:
            _check_write(args[0], args[-1])
        elif event in {"os.truncate", "os.setxattr", "os.removexattr"}:
            _check_write(args[0])
        elif event == "os.rename":
            _check_write(args[0], args[2])
            _check_write(args[1], args[3])
        elif event == "sqlite3.connect":
            database = args[0]
            if database != ":memory:" and database != "":
                if _isinstance(database, _str) and database.startswith("file:"):
                    raise _Denied("SQLite URIs are not allowed in the python tool; use a file name")
                _check_write(database)
        elif event in {"object.__setattr__", "object.__delattr__"}:
            if args[1] in {"__code__", "__defaults__", "__kwdefaults__"}:
                raise _Denied("changing " + args[1] + " is not allowed in the python tool")
        elif event in {"resource.setrlimit", "resource.prlimit", "code.__new__", "os.unshare", "os.setns",
                       "cpython.PyInterpreterState_New", "sqlite3.enable_load_extension",
                       "sqlite3.load_extension", "sys.remote_exec"}:
            raise _Denied(event + " is not allowed in the python tool")

    return guard

def _refuse_fork_exec(*args):
    raise PermissionError("starting processes is not allowed in the python tool; do the work in this process")

_no_processes = types.ModuleType("_posixsubprocess")
_no_processes.fork_exec = _refuse_fork_exec

def _user_frames_only(report, seen):
    if report is None or id(report) in seen:
        return
    seen.add(id(report))
    report.stack = traceback.StackSummary.from_list([f for f in report.stack if f.filename != "<sandbox>"])
    _user_frames_only(report.__cause__, seen)
    _user_frames_only(report.__context__, seen)

def _setup():
    status_fd, workdir = int(sys.argv[1]), sys.argv[2]
    cpu, memory, fsize, nofile, extra_tasks = (int(value) for value in sys.argv[3:8])
    uid = os.geteuid()
    tasks = _tasks_of(uid) if uid != 0 else 0  # counted before a user namespace hides the owners
    netns = _unshare_network()
    _limit(resource.RLIMIT_CPU, cpu, cpu + 1)
    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_FSIZE, fsize)
    _limit(resource.RLIMIT_NOFILE, nofile)
    _limit(resource.RLIMIT_CORE, 0)
    if uid != 0:
        _limit(resource.RLIMIT_NPROC, tasks + extra_tasks)
    os.write(status_fd, b"netns=1\n" if netns else b"netns=0\n")
    os.close(status_fd)
    readable = tuple(p for p in sys.path if p) + (
        "/usr/share", "/dev/null", "/dev/urandom", "/etc/localtime", "/etc/timezone", "/etc/mime.types",
        "/etc/os-release", "/usr/lib/os-release")
    with open(os.path.join(workdir, "main.py"), encoding="utf-8") as handle:
        source = handle.read()
    sys.modules["_posixsubprocess"] = _no_processes  # never the real one: its fork_exec is not audited
    sys.argv[:] = ["main.py"]
    # Tracebacks show the user's lines even after the code changes folder or deletes main.py.
    linecache.cache["main.py"] = (len(source), None, source.splitlines(True), "main.py")
    sys.addaudithook(_make_guard(workdir, readable))
    return source

try:
    _source = _setup()
except Exception as exc:
    print("sandbox setup failed:", type(exc).__name__, exc, file=sys.stderr)
    sys.exit(70)
_main = types.ModuleType("__main__")
_main.__file__ = "main.py"
sys.modules["__main__"] = _main
try:
    exec(compile(_source, "main.py", "exec"), _main.__dict__)
except SystemExit:
    raise
except BaseException as exc:
    _report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    _user_frames_only(_report, set())
    sys.stderr.write("".join(_report.format()))
    sys.exit(1)
'''
