"""MCP servers as tools: every tool a server lists becomes a langchain-core tool, called over a session kept open.

A server is a command spoken to over stdio (the operator's specs only: it runs code) or a streamable-HTTP URL,
reached only through the network guard. Sessions live on one background event loop (`mcp_transports` holds the
transports): a server that does not start or answer in ``timeout`` seconds is stopped, a message over
``max_response_bytes`` is refused without being held in memory, and a server that died is started again at
the next call. What a tool returns is the server's data, handed to the model like an action's HTTP response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from ..errors import ToolError
from ..spec import MCPServerConfig, MCPTool
from .actions import DEFAULT_MAX_RESULT_CHARS, _excerpt, auth_problems
from .compile import ToolProblem

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp.types import CallToolResult, Tool

    from .mcp_transports import Opener

MAX_TOOLS = 256  # a listing beyond this is a broken or hostile server, not a toolbox
MAX_SCHEMA_CHARS = 30_000  # one tool's input schema, as JSON
MAX_DESCRIPTION_CHARS = 2_000
_CLOSE_SECONDS = 10.0  # how long closing may take: the server's grace period and the kill that follows
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")


class MCPKind:
    """`- mcp: {command: [...]}` / `- mcp: {url: ...}` entries: one tool per tool the server lists."""

    imports_code = False  # checks never start the server; building does

    def check(self, entry: MCPTool, *, folder: Path, allow_private: bool) -> list[ToolProblem]:
        """What can be found without starting or calling the server: the command, the URL, auth, names."""
        config = entry.mcp
        problems = [ToolProblem(f"mcp.auth.{name}" if name else "mcp.auth", message) for name, message in auth_problems(config.auth)]
        if config.command:
            if _program(config.command[0], folder) is None:
                problems.append(ToolProblem("mcp.command", f"{config.command[0]!r} is not a program on PATH nor a file in "
                                                           "the spec's folder; install it or give its full path"))
        elif config.url and not allow_private:
            from .openapi import _literal_host_problem

            problem = _literal_host_problem(urlsplit(config.url).hostname or "")
            if problem:
                problems.append(ToolProblem("mcp.url", f"{config.url} is {problem}; the GPT must set "
                                                       "allow_private_network: true to use it"))
        if config.tools is not None and config.confirm:
            for name in sorted(set(config.confirm) - set(config.tools)):
                problems.append(ToolProblem("mcp.confirm", f"{name!r} is not one of the tools listed in mcp.tools"))
        return problems

    def build(self, entry: MCPTool, *, folder: Path, allow_private: bool) -> list[BaseTool]:
        """Start (or reach) the server, list its tools, and wrap the chosen ones."""
        return mcp_tools(entry.mcp, folder=folder, allow_private=allow_private)


def mcp_tools(config: MCPServerConfig, *, folder: Path, allow_private: bool, environ: Mapping[str, str] | None = None,
              max_result_chars: int = DEFAULT_MAX_RESULT_CHARS) -> list[BaseTool]:
    """The server's tools (all, or those `config.tools` names); ToolError naming the server when it cannot be used."""
    from .mcp_transports import opener

    connection = MCPConnection(opener(config, folder=folder, allow_private=allow_private,
                                      environ=os.environ if environ is None else environ), config)
    listed = {tool.name: tool for tool in connection.tools}
    chosen = _chosen(config, listed)
    confirm = set(config.confirm) if config.confirm is not None else None
    tools = [_make_tool(connection, listed[name], config, confirm, max_result_chars) for name in chosen]
    if not tools:
        connection.close()
    return tools


def _chosen(config: MCPServerConfig, listed: dict[str, Tool]) -> list[str]:
    wanted = list(listed) if config.tools is None else config.tools
    for names, where in ((wanted, "mcp.tools"), (config.confirm or [], "mcp.confirm")):
        unknown = [name for name in names if name not in listed]
        if unknown:
            offered = ", ".join(sorted(listed)[:30]) or "none"
            raise ToolError(f"MCP server {config.shown}: {where} names {', '.join(map(repr, unknown))}, which the server "
                            f"does not offer (its tools: {offered})")
    return wanted


def _program(program: str, folder: Path) -> str | None:
    """Where the command's program is: a file relative to the spec's folder, or one on PATH."""
    if "/" in program or os.sep in program:
        candidate = folder / program
        return str(candidate) if candidate.is_file() else None
    return shutil.which(program)


# -- the tools ---------------------------------------------------------------------------------------------


def _make_tool(connection: MCPConnection, tool: Tool, config: MCPServerConfig, confirm: set[str] | None,
               max_result_chars: int) -> BaseTool:
    name = _tool_name(config.prefix + tool.name)
    schema = _input_schema(tool, config)
    read_only = bool(tool.annotations and tool.annotations.read_only_hint)
    needs_confirmation = (tool.name in confirm) if confirm is not None else not read_only

    def call(**kwargs: Any) -> str:
        result = connection.call(tool.name, kwargs)
        return _result_text(name, result, max_result_chars)

    description = " ".join((tool.description or tool.title or f"The {tool.name} tool of an MCP server").split())
    return StructuredTool(
        name=name,
        description=_excerpt(description, MAX_DESCRIPTION_CHARS),
        args_schema=schema,
        func=call,
        handle_tool_error=True,
        metadata={"requires_confirmation": needs_confirmation, "mcp_server": config.shown, "mcp_tool": tool.name},
    )


def _tool_name(name: str) -> str:
    """A name every model API takes (letters, digits, _ and -, at most 64); the server's own name is kept aside."""
    return _TOOL_NAME.sub("_", name)[:64]


def _input_schema(tool: Tool, config: MCPServerConfig) -> dict[str, Any]:
    schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
    size = len(json.dumps(schema, default=str))
    if size > MAX_SCHEMA_CHARS:
        raise ToolError(f"MCP server {config.shown}: the input schema of {tool.name!r} is {size:,} characters (at most "
                        f"{MAX_SCHEMA_CHARS:,}); leave the tool out with mcp.tools")
    properties = schema.get("properties")
    return {**schema, "type": "object", "properties": properties if isinstance(properties, dict) else {}}


def _result_text(name: str, result: CallToolResult, max_chars: int) -> str:
    """What the model reads: the result's text blocks (other media named, not shown), or its structured content."""
    parts: list[str] = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)  # type: ignore[union-attr]
        elif kind == "resource":
            resource = block.resource  # type: ignore[union-attr]
            parts.append(getattr(resource, "text", None) or f"[binary resource {resource.uri}, not shown]")
        elif kind == "resource_link":
            parts.append(f"[resource: {block.uri}]")  # type: ignore[union-attr]
        else:
            parts.append(f"[{kind or 'unknown'} content ({getattr(block, 'mime_type', '') or 'no type'}), not shown]")
    if not any(part.strip() for part in parts) and result.structured_content is not None:
        parts = [json.dumps(result.structured_content, ensure_ascii=False, default=str)]
    text = "\n".join(parts)
    if result.is_error:
        raise ToolException(f"{name} failed: {_excerpt(text, min(max_chars, 2000)) or 'the MCP server gave no reason'}")
    return _excerpt(text, max_chars) or "(the tool returned nothing)"


# -- sessions ----------------------------------------------------------------------------------------------


class _Loop:
    """One event loop, in a daemon thread, that every MCP session of this process lives on."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        """The loop, started on first use."""
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="gptbuilder-mcp", daemon=True).start()
                cls._loop = loop
            return cls._loop

    @classmethod
    def run(cls, coroutine: Any, timeout: float) -> Any:
        """Run ``coroutine`` on the loop and wait for it; the coroutine bounds itself, ``timeout`` is a backstop."""
        future = asyncio.run_coroutine_threadsafe(coroutine, cls.get())
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise


@dataclass
class _Link:
    """One open session, owned by a task on the loop; ``dead`` is set when it ends, ``failure`` says why."""

    session: ClientSession | None = None
    tools: list[Tool] = field(default_factory=list)
    failure: str | None = None
    dead: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class _Sessions:
    """The live session with one server, opened again after it died; shared by the server's tools."""

    def __init__(self, opener: Opener, config: MCPServerConfig):
        self.opener = opener
        self.config = config
        self.link: _Link | None = None
        self.closed = False
        self._lock: asyncio.Lock | None = None

    async def live(self) -> _Link:
        """The open session, or a new one when there is none (ToolError when the server cannot be started)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.closed:
                raise ToolException(f"the MCP server {self.config.shown} was closed")
            if self.link is None or self.link.dead.is_set():
                self.link = await self._open()
            return self.link

    async def _open(self) -> _Link:
        link = _Link()
        ready = asyncio.Event()
        link.task = asyncio.create_task(self._serve(link, ready))
        try:
            await asyncio.wait_for(ready.wait(), self.config.timeout)
        except TimeoutError:
            await _finish(link, polite=False)
            raise ToolError(f"MCP server {self.config.shown} did not start within {self.config.timeout:g} s "
                            f"(mcp.timeout){self.opener.diagnosis()}") from None
        if link.session is None:
            await _finish(link)
            raise ToolError(f"MCP server {self.config.shown} could not be started: {link.failure}")
        return link

    async def _serve(self, link: _Link, ready: asyncio.Event) -> None:
        from mcp import ClientSession
        from mcp.types import Implementation

        from .. import __version__

        try:
            async with self.opener.open() as (read, write), ClientSession(
                read, write, client_info=Implementation(name="gptbuilder", version=__version__)
            ) as session:
                await session.initialize()
                link.tools = await self._list(session)
                link.session = session
                ready.set()
                await link.stop.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the session ended badly: remembered for the call or start that waits on it
            link.failure = self.opener.explain(exc)
        finally:
            link.session = None if not ready.is_set() else link.session
            link.dead.set()
            ready.set()

    async def _list(self, session: ClientSession) -> list[Tool]:
        from mcp.types import PaginatedRequestParams

        tools: list[Tool] = []
        cursor: str | None = None
        while True:
            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            tools.extend(page.tools)
            if len(tools) > MAX_TOOLS:
                raise ToolError(f"the server lists more than {MAX_TOOLS} tools")
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def call(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call one tool within the timeout; a server that dies or hangs fails the call (and is started afresh next time)."""
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED

        from .mcp_transports import OVERSIZED

        try:
            link = await self.live()
        except ToolError as exc:
            raise ToolException(str(exc)) from None
        if link.session is None:
            raise ToolException(f"{name} failed: the MCP server {self.config.shown} stopped: {link.failure}")
        call = asyncio.ensure_future(link.session.call_tool(name, arguments))
        died = asyncio.ensure_future(link.dead.wait())
        try:
            done, _ = await asyncio.wait({call, died}, timeout=self.config.timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            died.cancel()
        ended = None
        if call in done:
            try:
                return call.result()
            except MCPError as exc:
                if exc.code == OVERSIZED:
                    raise ToolException(f"{name} failed: {exc.message}") from None
                if exc.code != CONNECTION_CLOSED and exc.message != "Session terminated":
                    raise ToolException(f"{name} failed: the MCP server answered with an error: {_excerpt(exc.message, 2000)}") from None
                ended = exc
            except (RuntimeError, ValueError) as exc:  # a result that breaks the protocol (bad structured content...)
                raise ToolException(f"{name} failed: {_excerpt(str(exc), 2000)}") from None
        else:
            call.cancel()
        if call in done or died in done:  # the connection ended under the call: say why, start afresh next time
            await _finish(link)
            if ended is None or ended.message in ("Connection closed", "Session terminated"):
                why = "stopped: " + (link.failure or self.opener.explain(ended or MCPError(CONNECTION_CLOSED, "closed")))
            else:  # the transport's own words: an HTTP response stream that failed
                why = "broke off: " + _excerpt(ended.message, 500)
            raise ToolException(f"{name} failed: the MCP server {self.config.shown} {why}; the next call starts a new session")
        await _finish(link, polite=False)  # a server stuck on one call is likely stuck for good: start it afresh next time
        raise ToolException(f"{name} did not answer within {self.config.timeout:g} s (mcp.timeout); the MCP server "
                            f"{self.config.shown} was stopped and will be started again for the next call")

    async def close(self) -> None:
        """End the session (and stop the server it started)."""
        self.closed = True
        if self.link is not None:
            await _finish(self.link)


async def _finish(link: _Link, *, polite: bool = True) -> None:
    """Stop a session's task: asked first (when ``polite``), cancelled if it does not end in time."""
    link.stop.set()
    if link.task is None:
        return
    try:
        await asyncio.wait_for(asyncio.shield(link.task), 1.0 if polite else 0)
    except (TimeoutError, asyncio.CancelledError):
        link.task.cancel()
        await asyncio.wait({link.task}, timeout=_CLOSE_SECONDS)
    except Exception:  # already reported through link.failure
        pass


class MCPConnection:
    """A server's session as plain calls from any thread; closed when the last tool using it is gone."""

    def __init__(self, opener: Opener, config: MCPServerConfig):
        self.config = config
        self._sessions = _Sessions(opener, config)
        link = _Loop.run(self._sessions.live(), config.timeout + _CLOSE_SECONDS)
        self.tools: list[Tool] = list(link.tools)
        self._finalizer = weakref.finalize(self, _close, self._sessions)

    def call(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call a tool of the server by its own name; ToolException for the model when the call fails."""
        try:
            return _Loop.run(self._sessions.call(name, arguments), 2 * self.config.timeout + _CLOSE_SECONDS)
        except TimeoutError:
            raise ToolException(f"{name} did not answer within {self.config.timeout:g} s (mcp.timeout)") from None

    def close(self) -> None:
        """Stop the server (a command) or end the session (a URL) now."""
        self._finalizer()


def _close(sessions: _Sessions) -> None:
    with contextlib.suppress(Exception):  # closing at exit or after the loop stopped: nothing is left to stop
        _Loop.run(sessions.close(), _CLOSE_SECONDS + 2)
