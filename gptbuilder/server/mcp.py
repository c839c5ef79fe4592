"""MCP, served: every GPT is a tool, `ask_<id>`, at `/mcp` (streamable HTTP, behind the API keys), or one GPT over stdio.

A call takes ``{message, conversation?}`` and answers with the GPT's text and its sources, plus the conversation's
id to pass back for a follow-up. Over HTTP, conversations are stored like the widget's (channel ``mcp``, owned by
the caller's key) and each answer goes through the server's queue, limits and usage ledger; `gptbuilder mcp ID`
keeps them in memory for the one desktop client it serves. `/mcp` runs stateless: every request carries its key,
which `_Guard` checks before it gets here, so no session can outlive or outrank the key that opened it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from ..errors import GPTBuilderError, InputError
from ..events import Transcript
from ..history import as_sent
from .config import ServerConfig
from .errors import APIError

if TYPE_CHECKING:
    from fastapi import FastAPI
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.types import CallToolResult, Tool
    from starlette.types import Receive, Scope, Send

    from ..loader import LoadedSpec
    from ..store import Store
    from .state import ServerState

logger = logging.getLogger("gptbuilder.server")

MCP_PATH = "/mcp"
TOOL_PREFIX = "ask_"
CHANNEL = "mcp"
MAX_SOURCE_CHARS = 300  # of each source's passage in the answer's text (the structured content has the same)
MAX_MEMORY_CONVERSATIONS = 200  # `gptbuilder mcp` keeps this many conversations, the least recently used go first

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "minLength": 1, "description": "What to ask or tell the GPT"},
        "conversation": {
            "type": "string",
            "description": "The conversation id an earlier answer of this GPT gave, to continue that conversation",
        },
    },
    "required": ["message"],
    "additionalProperties": False,
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "sources": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"number": {"type": "integer"}, "source": {"type": "string"}, "text": {"type": "string"},
                               "cited": {"type": "boolean"}},
                "required": ["number", "source", "text", "cited"],
            },
        },
        "conversation": {"type": "string"},
    },
    "required": ["answer", "sources", "conversation"],
}


# -- what every MCP client sees ----------------------------------------------------------------------------


def gpt_tool(loaded: LoadedSpec) -> Tool:
    """The tool that asks one GPT."""
    from mcp.types import Tool, ToolAnnotations

    spec = loaded.spec
    about = f": {spec.description}" if spec.description else ""
    return Tool(
        name=f"{TOOL_PREFIX}{loaded.id}",
        title=f"Ask {spec.name}",
        description=f"Ask the GPT {spec.name!r}{about}. Answers with text and the sources it used; pass the "
        "conversation id it returns to ask a follow-up.",
        input_schema=INPUT_SCHEMA,
        output_schema=OUTPUT_SCHEMA,
        annotations=ToolAnnotations(title=f"Ask {spec.name}", read_only_hint=True, open_world_hint=bool(spec.tools)),
    )


def gpt_of(tool_name: str) -> str:
    """The GPT id a tool name asks (InputError for a name that is no GPT's tool)."""
    if not tool_name.startswith(TOOL_PREFIX) or len(tool_name) == len(TOOL_PREFIX):
        raise InputError(f"there is no tool {tool_name!r}: each GPT's tool is {TOOL_PREFIX}<gpt id>")
    return tool_name[len(TOOL_PREFIX):]


def arguments(raw: dict[str, Any] | None, *, max_chars: int) -> tuple[str, str | None]:
    """The message and conversation id of a call (InputError naming what is wrong)."""
    raw = raw or {}
    unknown = sorted(set(raw) - {"message", "conversation"})
    if unknown:
        raise InputError(f"unknown argument {unknown[0]!r}; the arguments are message and conversation")
    message, conversation = raw.get("message"), raw.get("conversation")
    if not isinstance(message, str) or not message.strip():
        raise InputError("'message' must be a non-empty string: what to ask the GPT")
    if len(message) > max_chars:
        raise InputError(f"the message is {len(message):,} characters; at most {max_chars:,} are accepted")
    if conversation is not None and (not isinstance(conversation, str) or not conversation.strip()):
        raise InputError("'conversation' must be the id an earlier answer gave, or left out to start one")
    return message, conversation


def answer(transcript: Transcript, conversation: str) -> CallToolResult:
    """The GPT's answer for the client: its text, then its sources; the same as structured content."""
    from mcp.types import CallToolResult, TextContent

    sources = [{"number": c.number, "source": c.source, "text": c.text[:MAX_SOURCE_CHARS], "cited": c.cited}
               for c in transcript.citations]
    lines = [transcript.text.strip() or "(the GPT gave no answer)"]
    if sources:
        lines += ["", "Sources:"]
        lines += [f"[{s['number']}] {s['source']}: {' '.join(str(s['text']).split())}" for s in sources]
    if transcript.confirmations:
        lines += ["", "(Nothing was run: the GPT's tools that need approval cannot be approved over MCP.)"]
    lines += ["", f"conversation: {conversation}"]
    return CallToolResult(content=[TextContent(type="text", text="\n".join(lines))],
                          structured_content={"answer": transcript.text, "sources": sources, "conversation": conversation})


def failure(message: str) -> CallToolResult:
    """A call that could not be answered, said to the client (and its model) as a tool error."""
    from mcp.types import CallToolResult, TextContent

    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


# -- /mcp on `gptbuilder serve` ----------------------------------------------------------------------------


def mount_mcp(app: FastAPI, state: ServerState) -> None:
    """Answer MCP at `/mcp`: one tool per valid GPT, each call as the key the request carries."""
    from starlette.routing import Route

    # before the store UI's catch-all mount at "/", which would otherwise take /mcp
    app.router.routes.insert(0, Route(MCP_PATH, _Endpoint(state), methods=["GET", "POST", "DELETE"], include_in_schema=False))


class _Endpoint:
    """The ASGI endpoint at `/mcp`: builds the MCP server and starts the SDK's session manager at the first request.

    Not in the app's lifespan, which tests (and some hosts) do not run; the manager stays up until the loop ends.
    """

    def __init__(self, state: ServerState):
        self.state = state
        self._manager: StreamableHTTPSessionManager | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None  # held: the loop keeps only a weak reference to its tasks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._task is None or self._task.done() or self._task.get_loop() is not asyncio.get_running_loop():
            self._ready = asyncio.Event()
            self._manager = self._build()  # a manager runs once: a new one for a new loop, or after a failure
            self._task = asyncio.get_running_loop().create_task(self._run(self._manager, self._ready),
                                                                name="gptbuilder-mcp-sessions")
        manager = self._manager
        await self._ready.wait()
        if manager is None or self._task.done():
            raise APIError(503, "the MCP endpoint could not start; see the server's log", code="unavailable")
        await manager.handle_request(scope, receive, send)

    def _build(self) -> StreamableHTTPSessionManager:
        from mcp.server.lowlevel import Server
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings
        from mcp.types import ListToolsResult

        from .. import __version__

        state = self.state

        async def list_tools(ctx: Any, _params: Any) -> ListToolsResult:
            specs = await run_in_threadpool(state.store.specs)
            return ListToolsResult(tools=[gpt_tool(loaded) for loaded in specs])

        async def call_tool(ctx: Any, params: Any) -> CallToolResult:
            return await _ask(state, ctx.request, params.name, params.arguments)

        server = Server("gptbuilder", version=__version__, on_list_tools=list_tools, on_call_tool=call_tool)
        return StreamableHTTPSessionManager(
            server,
            stateless=True,  # each request stands alone, authenticated by its own key
            json_response=True,  # one JSON answer per request: nothing held open between them
            # _Guard already refuses foreign Hosts and cross-site writes, with the operator's allowed hosts
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=state.config.max_body_bytes,
        )

    @staticmethod
    async def _run(manager: StreamableHTTPSessionManager, ready: asyncio.Event) -> None:
        try:
            async with manager.run():
                ready.set()
                await asyncio.Event().wait()  # until the server's loop is closed (its tasks are cancelled then)
        except Exception:
            logger.exception("the MCP session manager stopped")
        finally:
            ready.set()


async def _ask(state: ServerState, request: Any, tool_name: str, raw: dict[str, Any] | None) -> CallToolResult:
    """One question to one GPT, as the key of ``request``; every refusal becomes a tool error, never a crash."""
    try:
        caller = state.keys.caller(request)  # _Guard checked (and counted) this request's key already
        gpt_id = gpt_of(tool_name)
        message, conversation = arguments(raw, max_chars=state.config.max_message_chars)
        agent = await state.agent(gpt_id)
        started = time.perf_counter()
        conversation_id, messages = await run_in_threadpool(
            _stored_turn, state, gpt_id, caller.identity.owner, conversation, message)
        state.check_messages(messages)
        events = await state.generate(agent, messages, {"owner": f"key:{caller.key_id}", "pending": state.pending})
        transcript = Transcript()
        try:
            async for event in events:
                transcript.add(event)
        finally:
            await events.aclose()
        if transcript.done is not None:
            state.account(caller.key_id, agent, transcript.done)
        state.metrics.latency.labels("mcp").observe(time.perf_counter() - started)
        citations = [c.to_dict() for c in transcript.citations]
        await run_in_threadpool(state.history.add, conversation_id, "assistant", transcript.text, citations=citations)
        return answer(transcript, conversation_id)
    except APIError as exc:
        return failure(exc.message)
    except GPTBuilderError as exc:
        return failure(str(exc))
    except Exception:  # the client gets a plain message; the details go to the server's log
        logger.exception("MCP call of %s failed", tool_name)
        return failure("the GPT could not answer (an internal error, logged on the server); try again")


def _stored_turn(state: ServerState, gpt_id: str, owner: str, conversation: str | None,
                 message: str) -> tuple[str, list[dict[str, str]]]:
    """Record the user's message in their conversation with this GPT (a new one without an id); its messages so far."""
    history = state.history
    if conversation is None:
        conversation = history.start(gpt_id, channel=CHANNEL, owner=owner).id
    else:
        try:
            found = history.get(conversation)
        except InputError:
            found = None
        if found is None or found.owner != owner or found.gpt_id != gpt_id or found.channel != CHANNEL:
            raise InputError(f"no conversation {conversation!r} of yours with {gpt_id}; leave 'conversation' out to "
                             "start a new one")
    sent = history.add(conversation, "user", message)
    stored = as_sent(history.messages(conversation), sent, message)  # stored masked, answered as written
    return conversation, [{"role": m.role, "content": m.content} for m in stored if m.role in ("user", "assistant") and m.content]


# -- `gptbuilder mcp ID`: one GPT over stdio ---------------------------------------------------------------


async def serve_stdio(store: Store, gpt_id: str) -> None:
    """Serve one GPT's tool over this process's stdin and stdout until the client hangs up."""
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server
    from mcp.types import ListToolsResult

    from .. import __version__

    loaded = store.get(gpt_id)  # an unknown or broken GPT fails here, before the client is told anything
    memory = _Memory()

    async def list_tools(ctx: Any, _params: Any) -> ListToolsResult:
        return ListToolsResult(tools=[gpt_tool(loaded)])

    async def call_tool(ctx: Any, params: Any) -> CallToolResult:
        try:
            if gpt_of(params.name) != gpt_id:
                raise InputError(f"there is no tool {params.name!r}; this server has {TOOL_PREFIX}{gpt_id}")
            message, conversation = arguments(params.arguments, max_chars=ServerConfig.max_message_chars)
            conversation_id, messages = memory.turn(conversation, message)
            agent = await asyncio.to_thread(store.agent, gpt_id)  # built once, rebuilt when its files change
            transcript = await asyncio.to_thread(lambda: Transcript.from_events(agent.stream(messages)))
            memory.answer(conversation_id, transcript.text)
            return answer(transcript, conversation_id)
        except GPTBuilderError as exc:
            return failure(str(exc))
        except Exception:
            logger.exception("MCP call of %s failed", params.name)
            return failure("the GPT could not answer (an internal error, logged on stderr); try again")

    server = Server(f"gptbuilder {gpt_id}", version=__version__, title=loaded.spec.name,
                    description=loaded.spec.description or None, on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read, write):  # from here on, stray prints go to stderr, never onto the protocol
        await asyncio.to_thread(store.agent, gpt_id)  # the model loads before the first question, not during it
        await server.run(read, write, server.create_initialization_options())


class _Memory:
    """Conversations of one stdio client, in memory; the least recently used are forgotten past a bound."""

    def __init__(self, limit: int = MAX_MEMORY_CONVERSATIONS):
        self.limit = limit
        self._conversations: OrderedDict[str, list[dict[str, str]]] = OrderedDict()

    def turn(self, conversation: str | None, message: str) -> tuple[str, list[dict[str, str]]]:
        """Add the user's message (to a new conversation without an id); the conversation's messages."""
        if conversation is None:
            conversation = uuid.uuid4().hex
            self._conversations[conversation] = []
            while len(self._conversations) > self.limit:
                self._conversations.popitem(last=False)
        elif conversation not in self._conversations:
            raise InputError(f"no conversation {conversation!r} (this server forgets them when it stops); leave "
                             "'conversation' out to start a new one")
        self._conversations.move_to_end(conversation)
        messages = self._conversations[conversation]
        messages.append({"role": "user", "content": message})
        return conversation, list(messages)

    def answer(self, conversation: str, text: str) -> None:
        """Remember the GPT's answer."""
        if conversation in self._conversations and text:
            self._conversations[conversation].append({"role": "assistant", "content": text})
