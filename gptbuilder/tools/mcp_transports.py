"""How gptbuilder reaches an MCP server: a capped stdio pipe to a command it starts, or guarded streamable HTTP.

Stdio: the command runs in the spec's folder, in its own process group, with a minimal environment (no
gptbuilder settings or keys, only what the spec passes on); a message longer than ``max_response_bytes`` is
skipped as it arrives, never held whole, and the request it answered fails. HTTP: every connection goes
through `network.resolve_vetted` (the address checked is the one connected to), bodies are capped the same way.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

import anyio
import httpcore2
import httpx2
from mcp import MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage
from mcp.types import ErrorData, JSONRPCError, jsonrpc_message_adapter

from ..errors import ToolError
from .network import NetworkError, resolve_vetted

if TYPE_CHECKING:
    from anyio.abc import Process
    from mcp.client._transport import TransportStreams

    from ..spec import MCPServerConfig

# What a command inherits from gptbuilder's environment besides the spec's own variables (as the SDK does).
INHERITED_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR")
STDERR_TAIL_CHARS = 600
OVERSIZED = -32001  # the JSON-RPC error code answering a request whose response was over the cap
_GRACE_SECONDS = 1.0  # after stdin closes, before the process group is terminated, then killed
_ID = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,200}")')


class Opener(Protocol):
    """Opens a transport to one server, and words what went wrong with it."""

    def open(self) -> contextlib.AbstractAsyncContextManager[TransportStreams]:
        """The (read, write) streams of a new connection."""
        ...

    def explain(self, exc: BaseException) -> str:
        """Why the connection failed, for the message that names the server."""
        ...

    def diagnosis(self) -> str:
        """What the server said on its way out ("" when nothing), appended to messages."""
        ...


def opener(config: MCPServerConfig, *, folder: Path, allow_private: bool, environ: Mapping[str, str]) -> Opener:
    """The opener for ``config``; environment variables are read now, so a missing one fails at compile time."""
    if config.command:
        missing = [name for name in config.pass_env if not environ.get(name)]
        if missing:
            raise ToolError(f"MCP server {config.shown}: environment variable {', '.join(missing)} (mcp.pass_env) is "
                            "not set; set it before starting gptbuilder")
        env = {name: environ[name] for name in INHERITED_ENV if environ.get(name)}
        env.update({name: environ[name] for name in config.pass_env})
        env.update(config.env)
        return StdioOpener(list(config.command), env=env, cwd=folder, max_bytes=config.max_response_bytes)
    return HTTPOpener.build(config, allow_private=allow_private, environ=environ)


def _root(exc: BaseException) -> BaseException:
    """The first real failure inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = next((e for e in exc.exceptions if not isinstance(e, anyio.get_cancelled_exc_class())), exc.exceptions[0])
    return exc


def _words(exc: BaseException) -> str:
    if isinstance(exc, MCPError):
        return exc.message
    return str(exc) or type(exc).__name__


# -- stdio -------------------------------------------------------------------------------------------------


@dataclass
class StdioOpener:
    """Starts the command for each connection and speaks JSON-RPC lines over its stdin and stdout."""

    command: list[str]
    env: dict[str, str]
    cwd: Path
    max_bytes: int
    returncode: int | None = None
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    overflow: str | None = None

    def explain(self, exc: BaseException) -> str:
        """A missing program, a start refused by the OS, or the server's exit with its last stderr lines."""
        root = _root(exc)
        if isinstance(root, FileNotFoundError):
            return f"{self.command[0]!r} was not found (not on PATH nor in the spec's folder)"
        if isinstance(root, PermissionError):
            return f"{self.command[0]!r} may not be run: {root.strerror or root}"
        if self.overflow:
            return self.overflow
        if self.returncode is not None:
            return f"it exited with status {self.returncode}{self.diagnosis()}"
        return f"{_words(root)}{self.diagnosis()}"

    def diagnosis(self) -> str:
        """The end of what the server wrote to stderr."""
        tail = "\n".join(self.stderr).strip()[-STDERR_TAIL_CHARS:]
        return f"; its stderr ends: {tail}" if tail else ""

    @asynccontextmanager
    async def open(self) -> AsyncIterator[TransportStreams]:
        """Start the process; yield its message streams; stop it (stdin closed, then its group terminated)."""
        self.returncode, self.overflow = None, None
        self.stderr.clear()
        process = await anyio.open_process(self.command, env=self.env, cwd=self.cwd, start_new_session=True)
        read_in, read_out = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_in, write_out = anyio.create_memory_object_stream[SessionMessage](0)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._read, process, read_in)
                tasks.start_soon(self._write, process, write_out)
                tasks.start_soon(self._read_stderr, process)
                try:
                    yield read_out, write_in
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await _stop(process)
                self.returncode = process.returncode
                for stream in (read_in, read_out, write_in, write_out):
                    await stream.aclose()

    async def _read(self, process: Process, messages: Any) -> None:
        """One message a line; a line over the cap is dropped as it streams in, and answered with an error."""
        assert process.stdout is not None
        line, skipping = bytearray(), False
        async with messages:
            try:
                async for chunk in process.stdout:
                    start = 0
                    while True:
                        end = chunk.find(b"\n", start)
                        piece = chunk[start:] if end == -1 else chunk[start:end]
                        if not skipping and len(line) + len(piece) > self.max_bytes:
                            head = bytes(line[:512] or piece[:512])
                            line.clear()
                            skipping = True
                            refusal = self._refusal(head)
                            if refusal is None:
                                return  # no request to fail: the connection ends, and `overflow` says why
                            await messages.send(refusal)
                        elif not skipping:
                            line += piece
                        if end == -1:
                            break
                        if not skipping and line.strip():
                            await messages.send(_parse(bytes(line)))
                        line.clear()
                        skipping = False
                        start = end + 1
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
                pass

    def _refusal(self, head: bytes) -> Any:
        """An error answering the request whose over-long response this is (its id is read from the start)."""
        message = (f"the MCP server's answer is over the {self.max_bytes:,}-byte limit (mcp.max_response_bytes) and was "
                   "dropped; ask for less")
        found = _ID.search(head)
        if found is None:
            self.overflow = f"it sent a message over the {self.max_bytes:,}-byte limit (mcp.max_response_bytes)"
            return None
        request_id = json.loads(found.group(1))
        return SessionMessage(JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=OVERSIZED, message=message)))

    async def _write(self, process: Process, messages: Any) -> None:
        assert process.stdin is not None
        async with messages:
            try:
                async for message in messages:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await process.stdin.send(data.encode("utf-8"))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                pass

    async def _read_stderr(self, process: Process) -> None:
        assert process.stderr is not None
        partial = ""
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            async for chunk in process.stderr:
                text = partial + chunk.decode("utf-8", errors="replace")
                *lines, partial = text.split("\n")
                self.stderr.extend(line[:STDERR_TAIL_CHARS] for line in lines if line.strip())
                partial = partial[-STDERR_TAIL_CHARS:]
        if partial.strip():
            self.stderr.append(partial)


def _parse(line: bytes) -> Any:
    try:
        return SessionMessage(jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:  # not JSON-RPC (a stray print): the session reports it and carries on
        return exc


async def _stop(process: Process) -> None:
    """Close stdin and give the server a moment to leave; then terminate, then kill, its whole process group."""
    if process.stdin is not None:
        with contextlib.suppress(Exception):
            await process.stdin.aclose()
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
        with anyio.move_on_after(_GRACE_SECONDS):
            await process.wait()
        if process.returncode is not None:
            break
    if process.returncode is not None:  # the group may outlive its leader: its children go too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.aclose()


# -- streamable HTTP ---------------------------------------------------------------------------------------


@dataclass
class HTTPOpener:
    """Connects to a streamable-HTTP endpoint through the network guard, with the entry's headers and auth."""

    url: str
    headers: dict[str, str]
    allow_private: bool
    timeout: float
    max_bytes: int
    oauth: Any = None  # actions._ClientCredentials, whose token is fetched (in a thread) for each connection

    @classmethod
    def build(cls, config: MCPServerConfig, *, allow_private: bool, environ: Mapping[str, str]) -> HTTPOpener:
        """Read the auth secrets now (ToolError when one is missing) and vet the URL's host."""
        from .actions import _Auth

        url = config.url or ""
        auth = _Auth.build(config.auth, shown=url, environ=environ, allow_private=allow_private, timeout=config.timeout)
        if auth.params:
            parts = urlsplit(url)
            url = urlunsplit(parts._replace(query="&".join(filter(None, [parts.query, urlencode(auth.params)]))))
        parts = urlsplit(url)
        try:
            resolve_vetted(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80),
                           allow_private=allow_private, timeout=config.timeout)
        except NetworkError as exc:
            raise ToolError(f"MCP server {config.url}: {exc}") from None
        return cls(url, {**config.headers, **auth.headers}, allow_private, config.timeout, config.max_response_bytes,
                   auth.oauth)

    def explain(self, exc: BaseException) -> str:
        """The guard's refusal, the HTTP failure, or what the server answered."""
        root = _root(exc)
        if isinstance(root, httpx2.TimeoutException):
            return f"no answer within {self.timeout:g} s"
        if isinstance(root, httpx2.HTTPError):
            return f"cannot reach it: {root}"
        return _words(root)

    def diagnosis(self) -> str:
        """Nothing: an HTTP server's own logs are not ours to read."""
        return ""

    @asynccontextmanager
    async def open(self) -> AsyncIterator[TransportStreams]:
        """A guarded HTTP client and the SDK's streamable-HTTP transport over it."""
        headers = dict(self.headers)
        if self.oauth is not None:
            headers["Authorization"] = f"Bearer {await anyio.to_thread.run_sync(self.oauth.token)}"
        client = httpx2.AsyncClient(
            transport=_GuardedTransport(allow_private=self.allow_private, max_bytes=self.max_bytes),
            headers=headers,
            timeout=httpx2.Timeout(self.timeout, read=max(self.timeout, 300.0)),  # a GET event stream idles for long
            trust_env=False,  # no proxy from the environment: the guard must see the real destination
        )
        async with client, streamable_http_client(self.url, http_client=client, max_sse_event_size=self.max_bytes) as streams:
            yield streams


class _VettingBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's network backend, connecting only to addresses `resolve_vetted` accepted (one lookup, no rebinding)."""

    def __init__(self, *, allow_private: bool):
        self.allow_private = allow_private
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> httpcore2.AsyncNetworkStream:
        """Resolve and vet ``host`` (in a thread), then connect to the first vetted address that answers."""
        vet = functools.partial(resolve_vetted, host, port, allow_private=self.allow_private, timeout=timeout)
        failure: Exception | None = None
        for address in await anyio.to_thread.run_sync(vet, abandon_on_cancel=True):
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore2.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore2.AsyncNetworkStream:
        """Never: a spec names URLs, not sockets."""
        raise ToolError("unix sockets are not MCP servers a GPT may reach")

    async def sleep(self, seconds: float) -> None:
        """Wait (httpcore2's retries)."""
        await anyio.sleep(seconds)


class _GuardedTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport over a vetted httpcore2 pool, cutting any response body (not an event stream) at the cap."""

    def __init__(self, *, allow_private: bool, max_bytes: int):
        self.max_bytes = max_bytes
        self._pool = httpcore2.AsyncConnectionPool(ssl_context=httpx2.create_ssl_context(),
                                                   network_backend=_VettingBackend(allow_private=allow_private))

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send one request through the vetted pool, httpcore2's errors as httpx2's."""
        core = httpcore2.Request(
            method=request.method,
            url=httpcore2.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                              target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core)
        headers = httpx2.Headers(response.headers)
        length = headers.get("content-length", "")
        # an event stream's events are capped one by one by the SDK; any other body is capped whole here
        event_stream = headers.get("content-type", "").lower().startswith("text/event-stream")
        stream = _Capped(response.stream, None if event_stream else self.max_bytes, int(length) if length.isdigit() else 0,
                         request.url.host)
        return httpx2.Response(status_code=response.status, headers=response.headers, stream=stream,
                               extensions=response.extensions)

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._pool.aclose()


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except httpcore2.ConnectTimeout as exc:
        raise httpx2.ConnectTimeout(str(exc) or "timed out connecting") from None
    except httpcore2.TimeoutException as exc:
        raise httpx2.ReadTimeout(str(exc) or "timed out") from None
    except httpcore2.ConnectError as exc:
        raise httpx2.ConnectError(str(exc) or "connection failed") from None
    except (httpcore2.NetworkError, httpcore2.ProtocolError) as exc:
        raise httpx2.ReadError(str(exc) or type(exc).__name__) from None


class _Capped(httpx2.AsyncByteStream):
    """A response body, httpcore2's errors as httpx2's, that stops past ``limit`` bytes (None: no limit).

    It stops with httpx2.StreamError, which the SDK answers as a failed request rather than a broken connection.
    """

    def __init__(self, stream: Any, limit: int | None, declared: int, host: str):
        self._stream, self._limit, self._declared, self._host = stream, limit, declared, host

    async def __aiter__(self) -> AsyncIterator[bytes]:
        limit = self._limit
        too_large = (f"the response from {self._host} is over the {limit or 0:,}-byte limit (mcp.max_response_bytes); "
                     "stopped reading; ask for less")
        if limit is not None and self._declared > limit:
            raise httpx2.StreamError(too_large)
        size = 0
        with _as_httpx_errors():
            async for chunk in self._stream:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise httpx2.StreamError(too_large)
                yield chunk

    async def aclose(self) -> None:
        """Close the underlying stream (the connection goes back to the pool or is dropped)."""
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()
