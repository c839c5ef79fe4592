"""Run untrusted Python in a throwaway bubblewrap sandbox: the engine of the `python` tool.

Each call starts `bwrap` (https://github.com/containers/bubblewrap), which gives the code:

- its own mount, PID, IPC, UTS and network namespaces: the only network interface is an unconnected
  loopback, the only processes it sees are its own, and when the namespace's first process ends the kernel
  kills every process left in it;
- a filesystem of nothing but the interpreter, its standard library and the shared libraries they load,
  read-only at neutral paths (/usr/bin/python3, /usr/lib/pythonX.Y), a fresh /proc and a minimal /dev; the
  only writable place is a private tmpfs at /tmp with a total size quota, gone when the run ends;
- an unprivileged identity: uid 65534 with no capabilities and no_new_privs. As root, bwrap builds the
  namespaces with root's rights and the bootstrap drops to uid 65534 before any user code (a user namespace
  would map the sandbox to uid 0 outside, which the kernel exempts from RLIMIT_NPROC); as any other user,
  bwrap maps uid 65534 inside a new user namespace onto the caller and forbids nested user namespaces;
- no inherited environment (`--clearenv`) or file descriptors, resource limits on CPU seconds, address
  space, file size, open files and processes, set before the user's code runs and not raisable after.

The run ends at the wall-clock deadline: the sandbox's first process is killed through a pidfd, which ends
the whole namespace, and the call returns only once it is gone.

Where bubblewrap is missing or cannot create namespaces, nothing runs unless the operator sets
GPTBUILDER_UNSAFE_LOCAL_PYTHON=1: then the code runs as a plain child process of the server's user, with the
same limits and a temporary folder but no isolation at all — for single-user local use only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Literal

from ..errors import ToolError

UNSAFE_ENV = "GPTBUILDER_UNSAFE_LOCAL_PYTHON"
SANDBOX_UID = 65534  # "nobody": owns nothing on the sandbox's filesystem
DISK_MB = 100  # total size of the private /tmp, and the largest file the code may write
MAX_OPEN_FILES = 128
EXTRA_PROCESSES = 32  # tasks (threads count too) the code may add before fork fails
WORKDIR = "/tmp"  # the sandbox's working folder, HOME and TMPDIR
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap; "
    "Alpine: apk add bubblewrap) on a Linux kernel that allows namespaces, or, for single-user local use "
    f"only, set {UNSAFE_ENV}=1 to run the code unsandboxed as the server's own user"
)
_STARTUP_S = 10.0  # how long bwrap may take to build the sandbox before the run is abandoned
_TEARDOWN_S = 5.0
_SANDBOX_INIT_TASKS = 2  # bwrap's init process and the interpreter


@dataclass(frozen=True)
class SandboxResult:
    """What one run printed and how it ended."""

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    truncated: bool
    error: str | None
    sandbox: str = "bubblewrap"
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the code ran to the end without an error."""
        return self.error is None


@dataclass(frozen=True)
class SandboxStatus:
    """Which sandbox the python tool uses on this machine, and why."""

    kind: Literal["bubblewrap", "unsafe-local", "unavailable"]
    detail: str
    version: str | None = None

    @property
    def usable(self) -> bool:
        """Whether the python tool can run code here."""
        return self.kind != "unavailable"


def sandbox_status() -> SandboxStatus:
    """Probe (once per bwrap binary) whether bubblewrap works here; else the operator's opt-in decides."""
    bwrap = shutil.which("bwrap")
    version: str | None = None
    problem: str | None = "bubblewrap (bwrap) is not installed or not on PATH"
    if bwrap is not None:
        version, problem = _probe(os.path.realpath(bwrap))
        if problem is None:
            who = "as root, dropping to uid 65534" if os.geteuid() == 0 else "in a user namespace as uid 65534"
            return SandboxStatus("bubblewrap", f"{bwrap} works here ({who}, no network, {DISK_MB} MB private /tmp)",
                                 version)
    if os.environ.get(UNSAFE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return SandboxStatus("unsafe-local", f"{problem}; {UNSAFE_ENV} is set, so code runs UNSANDBOXED as the "
                             "server's own user (single-user local use only)", version)
    return SandboxStatus("unavailable", f"{problem}; the python tool is disabled: {INSTALL_HINT}", version)


def require_sandbox() -> SandboxStatus:
    """The sandbox to run code in, or ToolError saying what to install."""
    status = sandbox_status()
    if not status.usable:
        raise ToolError(f"the python tool needs a sandbox: {status.detail}")
    return status


def run_python(code: str, *, timeout: float, memory_mb: int, max_output_chars: int) -> SandboxResult:
    """Run `code` in a fresh sandbox and return its output, truncated to the budget."""
    if timeout <= 0 or memory_mb <= 0 or max_output_chars <= 0:
        raise ToolError("timeout, memory_mb and max_output_chars must be positive")
    try:
        source = code.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(f"the code is not valid text ({exc.reason} at character {exc.start}); resend it") from None
    status = require_sandbox()
    limits = _Limits(timeout=timeout, memory_mb=memory_mb, max_output_chars=max_output_chars)
    if status.kind == "bubblewrap":
        return _run_bubblewrap(source, limits, bwrap=shutil.which("bwrap") or "bwrap")
    return _run_unsafe(source, limits)


@dataclass(frozen=True)
class _Limits:
    timeout: float
    memory_mb: int
    max_output_chars: int

    @property
    def cpu_seconds(self) -> int:
        return int(self.timeout) + 1


# --- the bubblewrap sandbox -------------------------------------------------------------------


@lru_cache(maxsize=8)
def _probe(bwrap: str) -> tuple[str | None, str | None]:
    """(version, None) when a real sandboxed run works with this bwrap, else (version, why not)."""
    try:
        found = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{bwrap} does not run: {exc}"
    version = found.stdout.strip() or None
    try:
        result = _run_bubblewrap(b"print(6 * 7)", _Limits(timeout=10, memory_mb=256, max_output_chars=1000),
                                 bwrap=bwrap)
    except ToolError as exc:
        return version, f"{bwrap} cannot build a sandbox here ({exc})"
    if result.stdout != "42\n":
        return version, f"{bwrap} ran a test program wrongly ({result.error or result.stdout!r})"
    return version, None


@dataclass(frozen=True)
class _Runtime:
    """The interpreter, standard library and shared libraries, and where each appears in the sandbox."""

    mounts: tuple[tuple[str, str], ...]  # (host path, sandbox path), bound read-only
    hidden: tuple[str, ...]  # sandbox folders covered by an empty read-only tmpfs (site-packages)
    library_path: str | None  # LD_LIBRARY_PATH for libraries moved out of non-system folders

    def folders(self) -> list[str]:
        """Every folder the sandbox must create to hold the mounts, parents first."""
        targets = [target for _, target in self.mounts]
        needed: set[str] = set()
        for target in targets:
            parent = os.path.dirname(target)
            while parent != "/" and not any(_within(parent, other) for other in targets if other != target):
                needed.add(parent)
                parent = os.path.dirname(parent)
        return sorted(needed, key=lambda path: (path.count("/"), path))


SANDBOX_PYTHON = "/usr/bin/python3"
_SYSTEM_LIBRARY_ROOTS = ("/lib", "/lib32", "/lib64", "/libx32", "/usr/lib", "/usr/lib32", "/usr/lib64")
_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")
_SKIPPED_EXTENSIONS = ("_tkinter",)  # needs X11 and Tk, useless without a display


@lru_cache(maxsize=1)
def _runtime() -> _Runtime:
    """What this interpreter needs to start and import its standard library, found once per process."""
    executable = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    stdlib = os.path.realpath(os.path.dirname(os.__file__))
    dynload = next((os.path.realpath(p) for p in sys.path if p.endswith("lib-dynload") and os.path.isdir(p)),
                   os.path.join(stdlib, "lib-dynload"))
    inner_stdlib = f"/usr/lib/python{sys.version_info.major}.{sys.version_info.minor}"
    mounts = [(executable, SANDBOX_PYTHON), (stdlib, inner_stdlib)]
    if os.path.isdir(dynload) and not _within(dynload, stdlib):
        mounts.append((dynload, inner_stdlib + "/lib-dynload"))
    extensions = sorted(entry.path for entry in os.scandir(dynload) if entry.name.endswith(".so")
                        and not entry.name.startswith(_SKIPPED_EXTENSIONS)) if os.path.isdir(dynload) else []
    relocated = False
    for library in _shared_libraries([executable, *extensions]):
        if any(_within(library, root) for root in _SYSTEM_LIBRARY_ROOTS):
            mounts.append((library, library))
        else:  # e.g. pyenv's libpython under /root: the sandbox must not show where it came from
            mounts.append((library, "/usr/lib/" + os.path.basename(library)))
            relocated = True
    for extra in ("/etc/ld.so.cache", "/usr/share/zoneinfo"):
        if os.path.exists(extra):
            mounts.append((extra, extra))
    hidden = tuple(f"{inner_stdlib}/{name}" for name in ("site-packages", "dist-packages")
                   if os.path.isdir(os.path.join(stdlib, name)))
    unique = tuple({target: source for source, target in mounts}.items())
    return _Runtime(tuple((source, target) for target, source in unique), hidden,
                    "/usr/lib" if relocated else None)


def _shared_libraries(binaries: list[str]) -> list[str]:
    """The shared libraries (the dynamic loader included) that `binaries` load, as ldd resolves them."""
    ldd = shutil.which("ldd")
    if ldd is None:
        raise ToolError("ldd was not found (Debian: apt-get install libc-bin); the sandbox needs it to find the "
                        "interpreter's shared libraries")
    found = subprocess.run([ldd, *binaries], capture_output=True, text=True, timeout=60, check=False)
    libraries: dict[str, None] = {}
    for line in found.stdout.splitlines():
        if match := _LDD_LINE.match(line):
            libraries[match.group(1)] = None
    if not libraries and found.returncode != 0:
        raise ToolError(f"ldd could not read {binaries[0]}: {found.stderr.strip() or found.stdout.strip()}")
    return list(libraries)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _bwrap_argv(bwrap: str, runtime: _Runtime, *, as_root: bool, info_fd: int, bootstrap_args: list[str]) -> list[str]:
    argv = [bwrap, "--die-with-parent", "--new-session", "--clearenv", "--info-fd", str(info_fd),
            "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", "sandbox"]
    if as_root:  # no user namespace: it would map the sandbox onto uid 0; the bootstrap drops to SANDBOX_UID
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user", "--disable-userns", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    for folder in runtime.folders():
        argv += ["--perms", "0755", "--dir", folder]
    for source, target in runtime.mounts:
        argv += ["--ro-bind", source, target]
    for folder in runtime.hidden:
        argv += ["--perms", "0555", "--size", "4096", "--tmpfs", folder, "--remount-ro", folder]
    argv += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
             "--perms", "01777", "--size", str(DISK_MB * 1024 * 1024), "--tmpfs", WORKDIR,
             "--remount-ro", "/", "--chdir", WORKDIR]
    environment = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "HOME": WORKDIR, "TMPDIR": WORKDIR,
                   "MALLOC_ARENA_MAX": "2"}  # glibc reserves 64 MB of address space per thread arena otherwise
    if runtime.library_path:
        environment["LD_LIBRARY_PATH"] = runtime.library_path
    for name, value in environment.items():
        argv += ["--setenv", name, value]
    return [*argv, SANDBOX_PYTHON, *_PYTHON_FLAGS, _LAUNCH, _BOOTSTRAP, *bootstrap_args]


def _run_bubblewrap(source: bytes, limits: _Limits, *, bwrap: str) -> SandboxResult:
    runtime = _runtime()
    as_root = os.geteuid() == 0
    tasks = (_tasks_of(SANDBOX_UID) or 0) + 1 if as_root else _SANDBOX_INIT_TASKS
    info_read, info_write = os.pipe()
    with _Channels(source) as channels:
        args = channels.bootstrap_args(WORKDIR, drop_to=SANDBOX_UID if as_root else -1, limits=limits,
                                       nproc=tasks + EXTRA_PROCESSES, isolated=True)
        argv = _bwrap_argv(bwrap, runtime, as_root=as_root, info_fd=info_write, bootstrap_args=args)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True, pass_fds=(info_write, *channels.child_fds), env={})
        except OSError as exc:
            os.close(info_read)
            raise ToolError(f"could not start the sandbox ({bwrap}): {exc}") from exc
        finally:
            os.close(info_write)
            channels.close_child_ends()
        init = _SandboxInit(info_read, proc, deadline=started + _STARTUP_S)
        return _supervise(proc, channels, limits, started=started, sandbox="bubblewrap", stop=init.stop)


class _SandboxInit:
    """The sandbox's first process (bwrap's init in the new PID namespace), held by a pidfd."""

    def __init__(self, info_fd: int, proc: subprocess.Popen[bytes], *, deadline: float):
        self._pidfd: int | None = None
        try:
            info = _read_all(info_fd, deadline)
        finally:
            os.close(info_fd)
        try:
            pid = int(json.loads(info)["child-pid"])
        except (ValueError, KeyError, TypeError):
            return  # bwrap failed before creating it; its stderr says why
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return  # already gone, and its namespace with it
        if _parent_of(pid) == proc.pid:  # still bwrap's child: the pidfd is that process, not a reused pid
            self._pidfd = pidfd
        else:
            os.close(pidfd)

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Kill it if it still runs, and bwrap with it; return once it is gone, and so is all its namespace."""
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        _kill_group(proc)
        if self._pidfd is not None:  # readable once it has exited, after the kernel killed the rest
            _readable(self._pidfd, _TEARDOWN_S)
            os.close(self._pidfd)
            self._pidfd = None


def _read_all(fd: int, deadline: float) -> bytes:
    data = b""
    while (left := deadline - time.monotonic()) > 0 and _readable(fd, left):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def _readable(fd: int, seconds: float) -> bool:
    """Whether ``fd`` turns readable within ``seconds``: poll, since select() fails on descriptors past 1023,
    which a busy server reaches."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, seconds) * 1000))


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _tasks_of(uid: int) -> int | None:
    """Tasks (threads included) `uid` runs now, which RLIMIT_NPROC counts too; None without a /proc to count."""
    if not os.path.isdir("/proc/self"):
        return None
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                pass
    return count


# --- the unsafe local runner (opt-in, no isolation) -------------------------------------------


def _run_unsafe(source: bytes, limits: _Limits) -> SandboxResult:
    uid = os.geteuid()
    with tempfile.TemporaryDirectory(prefix="gptbuilder-python-") as tmp, _Channels(source) as channels:
        workdir = os.path.realpath(tmp)
        tasks = _tasks_of(uid) if uid != 0 else None  # the kernel exempts root anyway
        nproc = tasks + 1 + EXTRA_PROCESSES if tasks is not None else -1
        argv = [os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable), *_PYTHON_FLAGS, _LAUNCH,
                _BOOTSTRAP, *channels.bootstrap_args(workdir, drop_to=-1, limits=limits, nproc=nproc, isolated=False)]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir,
               "MALLOC_ARENA_MAX": "2"}
        started = time.monotonic()
        try:
            proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True, pass_fds=channels.child_fds)
        except OSError as exc:
            raise ToolError(f"could not start Python ({argv[0]}): {exc}") from exc
        finally:
            channels.close_child_ends()
        return _supervise(proc, channels, limits, started=started, sandbox="unsafe-local",
                          stop=lambda proc: _kill_group(proc, reaped_ok=True))


# --- shared by both runners -------------------------------------------------------------------


class _Channels:
    """The code (a file descriptor the bootstrap reads and closes) and the bootstrap's ready signal."""

    def __init__(self, source: bytes):
        self._code = tempfile.TemporaryFile(prefix="gptbuilder-python-")  # noqa: SIM115 - closed in __exit__
        self._code.write(source)
        self._code.flush()
        self._code.seek(0)
        self._status_read, self._status_write = os.pipe()

    def __enter__(self) -> _Channels:
        return self

    def __exit__(self, *_: object) -> None:
        self._code.close()
        self.close_child_ends()
        if self._status_read >= 0:
            os.close(self._status_read)
            self._status_read = -1

    @property
    def child_fds(self) -> tuple[int, int]:
        return self._code.fileno(), self._status_write

    def bootstrap_args(self, workdir: str, *, drop_to: int, limits: _Limits, nproc: int, isolated: bool) -> list[str]:
        values = [self._status_write, self._code.fileno(), drop_to, int(isolated), limits.cpu_seconds,
                  limits.memory_mb * 1024 * 1024, DISK_MB * 1024 * 1024, MAX_OPEN_FILES, nproc]
        return [*(str(value) for value in values), workdir]

    def close_child_ends(self) -> None:
        if self._status_write >= 0:
            os.close(self._status_write)
            self._status_write = -1

    def ready(self) -> bool:
        """Whether the bootstrap finished its setup and handed over to the user's code."""
        with os.fdopen(self._status_read, "rb") as status:
            self._status_read = -1
            return status.read(16).startswith(b"ready")


def _supervise(proc: subprocess.Popen[bytes], channels: _Channels, limits: _Limits, *, started: float, sandbox: str,
               stop: Callable[[subprocess.Popen[bytes]], None]) -> SandboxResult:
    """Collect the output until the run ends or its deadline passes, then `stop` whatever is left of it."""
    out, err = _Capture(proc.stdout, limits), _Capture(proc.stderr, limits)
    timed_out = False
    try:
        proc.wait(timeout=max(0.0, started + limits.timeout - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        stop(proc)
        proc.wait()
        out.join()
        err.join()
    return _result(proc, out, err, limits, timed_out=timed_out, ready=channels.ready(), sandbox=sandbox,
                   duration=time.monotonic() - started)


def _kill_group(proc: subprocess.Popen[bytes], *, reaped_ok: bool = False) -> None:
    # The child leads its own session; killing the group also ends what it started (outside bwrap, what did
    # not call setsid). A reaped leader's pgid stays reserved while any member lives, so it is still safe.
    if proc.returncode is not None and not reaped_ok:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _result(proc: subprocess.Popen[bytes], out: _Capture, err: _Capture, limits: _Limits, *, timed_out: bool,
            ready: bool, sandbox: str, duration: float) -> SandboxResult:
    stdout, out_cut = out.text()
    stderr, err_cut = err.text()
    if not ready and not timed_out:
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {proc.returncode}"
        raise ToolError(f"the {sandbox} sandbox failed to start: {detail}")
    exit_code = None if timed_out else proc.returncode
    if sandbox == "bubblewrap" and exit_code is not None and 128 < exit_code < 128 + signal.NSIG:
        exit_code = 128 - exit_code  # bwrap reports a child killed by signal N as 128 + N
    return SandboxResult(
        stdout=stdout,
        stderr=stderr,
        exit_code=exit_code,
        timed_out=timed_out,
        truncated=out_cut or err_cut,
        error=_describe(exit_code, stderr, timed_out=timed_out, limits=limits),
        sandbox=sandbox,
        duration_s=duration,
    )


def _describe(exit_code: int | None, stderr: str, *, timed_out: bool, limits: _Limits) -> str | None:
    """One line saying why a run failed, or None when it succeeded."""
    if timed_out:
        return f"timed out after {limits.timeout:g} s and was stopped; make the code faster or do less per call"
    if exit_code == 0:
        return None
    last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    if last.startswith("MemoryError"):
        return f"ran out of memory (limit {limits.memory_mb} MB); use less data per call"
    if "[Errno 28]" in last:
        return f"filled its {DISK_MB} MB of private disk space ({last}); write less data"
    if exit_code is not None and exit_code < 0:
        signum = -exit_code
        if signum == signal.SIGXCPU:
            return f"used more than {limits.cpu_seconds} s of CPU time and was stopped"
        if signum == signal.SIGXFSZ:
            return f"wrote a file larger than {DISK_MB} MB and was stopped"
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        if signum in (signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS):
            return f"was killed by {name}, probably for using too much memory (limit {limits.memory_mb} MB)"
        return f"was killed by {name}"
    return last or f"exited with status {exit_code}"


class _Capture:
    """Drains one pipe in a thread, keeping its first and last bytes within a budget."""

    def __init__(self, stream: IO[bytes] | None, limits: _Limits):
        assert stream is not None
        self._fd = stream.fileno()
        self._stream = stream
        self._limit = limits.max_output_chars
        self._keep = limits.max_output_chars * 4  # bytes: enough for the character budget at each end
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
        self._thread.join(timeout=_TEARDOWN_S)
        if not self._thread.is_alive():  # else a straggler still holds the pipe: leave the fd to it
            self._stream.close()

    def text(self) -> tuple[str, bool]:
        """The captured text within the character budget, and whether anything was cut out."""
        kept_tail = self._tail[-self._keep :]
        dropped = self._total - len(self._head) - len(kept_tail)
        if dropped <= 0:  # nothing skipped: decode in one piece so no character is split
            head, tail = (self._head + self._tail).decode("utf-8", errors="replace"), ""
        else:
            head, tail = self._head.decode("utf-8", errors="replace"), kept_tail.decode("utf-8", errors="replace")
        if not tail and len(head) <= self._limit:
            return head, False
        return cut_middle(head, self._limit, tail=tail, skipped=max(dropped, 0)), True


def cut_middle(text: str, limit: int, *, tail: str = "", skipped: int = 0) -> str:
    """Keep the start of `text` and the end of `tail` (or of `text`) within about `limit` characters."""
    end = tail or text
    first, last = limit - limit // 2, limit // 2
    omitted = len(text) + len(tail) + skipped - first - min(last, len(end))
    if omitted <= 0:
        return text + tail
    marker = f"\n[... about {omitted:,} characters omitted ...]\n"
    return text[:first] + marker + (end[-last:] if last else "")


_PYTHON_FLAGS = ("-I", "-S", "-B", "-u", "-X", "utf8", "-c")

# The bootstrap travels as an argument so its frames carry a name tracebacks can leave out.
_LAUNCH = "import sys; exec(compile(sys.argv.pop(1), '<sandbox>', 'exec'))"

# Runs first in the sandbox: drop to the sandbox user (as root), check that no privilege is left, set the
# limits, read the code, signal ready and run it as __main__ with tracebacks of the user's frames only.
_BOOTSTRAP = r'''
import os, sys, resource, types, traceback, linecache

def _limit(kind, soft, hard=None):
    hard = soft if hard is None else hard
    current = resource.getrlimit(kind)[1]
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(kind, (soft, hard))

def _unprivileged():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    caps = [int(fields[name], 16) for name in ("CapPrm", "CapEff", "CapAmb")]
    if any(caps) or fields.get("NoNewPrivs", "0").strip() != "1" or os.getuid() == 0 or os.geteuid() == 0:
        raise RuntimeError("the sandbox kept privileges (uid %d, caps %s)" % (os.geteuid(), caps))

def _user_frames_only(report, seen):
    if report is None or id(report) in seen:
        return
    seen.add(id(report))
    report.stack = traceback.StackSummary.from_list([f for f in report.stack if f.filename != "<sandbox>"])
    _user_frames_only(report.__cause__, seen)
    _user_frames_only(report.__context__, seen)

def _setup():
    status_fd, code_fd, drop_to, isolated, cpu, memory, fsize, nofile, nproc = (int(a) for a in sys.argv[1:10])
    workdir = sys.argv[10]
    if drop_to >= 0:
        os.setgroups([])
        os.setresgid(drop_to, drop_to, drop_to)
        os.setresuid(drop_to, drop_to, drop_to)
    if isolated:
        _unprivileged()
    chunks = []
    while True:
        chunk = os.read(code_fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(code_fd)
    source = b"".join(chunks).decode("utf-8")
    os.chdir(workdir)
    with open("main.py", "w", encoding="utf-8") as handle:
        handle.write(source)
    _limit(resource.RLIMIT_CPU, cpu, cpu + 1)
    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_FSIZE, fsize)
    _limit(resource.RLIMIT_NOFILE, nofile)
    _limit(resource.RLIMIT_CORE, 0)
    if nproc > 0:
        _limit(resource.RLIMIT_NPROC, nproc)
    os.write(status_fd, b"ready\n")
    os.close(status_fd)
    sys.argv[:] = ["main.py"]
    # Tracebacks show the user's lines even after the code changes folder or deletes main.py.
    linecache.cache["main.py"] = (len(source), None, source.splitlines(True), "main.py")
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
