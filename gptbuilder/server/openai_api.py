"""`/v1`: every valid GPT is a model, in OpenAI's wire format (chat, legacy completions, models, usage)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Collection
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from ..agent import Agent
from ..errors import InputError
from ..events import (
    Citation,
    ConfirmationRequest,
    Curated,
    Done,
    Event,
    Grounding,
    Moderated,
    TextDelta,
    TokenLogprobs,
    ToolCall,
    ToolResult,
    Transcript,
)
from ..models.base import check_json_schema, vocabulary_size
from ..models.structured import answer_schema
from .auth import Caller
from .errors import APIError, guarded_stream
from .schemas import ChatCompletionRequest, CompletionRequest
from .state import ServerState

router = APIRouter(prefix="/v1")
DISCONNECT_POLL_SECONDS = 0.5
# Events end with a blank line of bare "\n", as OpenAI and vLLM send them: hand-written clients split the
# stream on "\n\n" (sse_starlette's default is "\r\n", which the SSE spec allows but they do not expect).
SSE_SEPARATOR = "\n"
SHADOWED_HEADER = "x-gptbuilder-shadowed-tools"  # the caller's tools not offered: one of the GPT's own has the name
Citations = Literal["off", "field", "inline"]


def sse_event(data: str, *, event: str | None = None) -> ServerSentEvent:
    """One server-sent event with OpenAI's line endings."""
    return ServerSentEvent(data, event=event, sep=SSE_SEPARATOR)


def sse_response(events: AsyncIterator[ServerSentEvent], st: ServerState, headers: dict[str, str] | None = None) -> EventSourceResponse:
    """A text/event-stream response of ``events``, with keepalive pings, all with OpenAI's line endings."""
    headers = {"Cache-Control": "no-cache", **(headers or {})}
    return EventSourceResponse(events, ping=st.config.keepalive_seconds, sep=SSE_SEPARATOR, headers=headers)


def _state(request: Request) -> ServerState:
    return request.app.state.gptbuilder


async def authorized(request: Request) -> Caller:
    """Dependency: a valid key (when keys are configured) within its rate limits (no I/O: stays on the loop)."""
    return _state(request).caller(request)


def _model_entry(loaded: Any) -> dict[str, Any]:
    return {
        "id": loaded.id,
        "object": "model",
        "created": int(loaded.path.stat().st_mtime) if loaded.path.exists() else 0,
        "owned_by": "gptbuilder",
        "name": loaded.spec.name,
        "description": loaded.spec.description,
    }


@router.get("/models")
def list_models(request: Request, _caller: Caller = Depends(authorized)) -> dict[str, Any]:
    """One model per valid GPT."""
    return {"object": "list", "data": [_model_entry(s) for s in _state(request).store.specs()]}


@router.get("/models/{gpt_id}")
def get_model(gpt_id: str, request: Request, _caller: Caller = Depends(authorized)) -> dict[str, Any]:
    """One GPT as a model; 404 with did-you-mean when unknown."""
    return _model_entry(_state(request).store.get(gpt_id))


def _finish(reason: str | None) -> str | None:
    """Done's finish reason on OpenAI's wire: a pause for approval is a normal stop there."""
    return "stop" if reason == "confirmation_required" else reason


def _fields(event: Citation | ConfirmationRequest | Curated | Grounding | Moderated) -> dict[str, Any]:
    data = event.to_dict()
    data.pop("type")
    return data


def _tool_call(event: ToolCall, index: int) -> dict[str, Any]:
    return {
        "index": index,
        "id": event.id,
        "type": "function",
        "function": {"name": event.name, "arguments": json.dumps(event.arguments, ensure_ascii=False)},
    }


class _Reply:
    """An answer in OpenAI's shape: each event's delta as it streams, the whole message at the end.

    Calls of the caller's tools (``client_tools``, their names) are OpenAI `tool_calls` (a `function_call`
    for a client of the deprecated `functions`); the GPT's own tool calls and results are gptbuilder's
    `tool_steps`, shown beside the answer. Token log probabilities (TokenLogprobs events, which come
    before their text) ride with the next text delta; those of text an output guard withheld are never
    shown. ``citations``: "field" lists the sources in a `citations` field, "inline" also appends them to
    the text as footnotes (`footnotes`), "off" leaves them out.
    """

    def __init__(
        self,
        client_tools: Collection[str] = (),
        *,
        logprobs: bool = False,
        legacy_functions: bool = False,
        citations: Citations = "field",
    ):
        self.client_tools = frozenset(client_tools)
        self.logprobs = logprobs
        self.legacy_functions = legacy_functions
        self.citations = citations
        self.transcript = Transcript()
        self.token_logprobs: list[dict[str, Any]] = []  # every token shown, in order
        self.delta_logprobs: list[dict[str, Any]] = []  # the tokens of the last text delta
        self._held: list[dict[str, Any]] = []  # tokens whose text has not come out yet

    @property
    def done(self) -> Done:
        """The answer's end (a stream that stopped without one is a 500: the agent always ends with Done)."""
        if self.transcript.done is None:  # pragma: no cover
            raise APIError(500, "the answer ended without finishing")
        return self.transcript.done

    def for_client(self, event: Event) -> bool:
        """Whether an event is a call of one of the caller's tools (theirs to run), not a step of the GPT's own."""
        return isinstance(event, ToolCall) and event.name in self.client_tools

    def client_calls(self) -> list[ToolCall]:
        """The calls of the caller's tools, in order."""
        return [call for call in self.transcript.tool_calls if call.name in self.client_tools]

    def add(self, event: Event) -> dict[str, Any]:
        """Fold one event in; return the delta fields it adds to a streamed chunk."""
        self.transcript.add(event)
        match event:
            case TokenLogprobs():
                self._held.extend(event.content)
            case TextDelta():
                self.delta_logprobs, self._held = self._held, []
                self.token_logprobs.extend(self.delta_logprobs)
                return {"content": event.text}
            case ToolCall() if self.for_client(event) and self.legacy_functions:
                return {"function_call": _tool_call(event, 0)["function"]} if len(self.client_calls()) == 1 else {}
            case ToolCall() if self.for_client(event):
                return {"tool_calls": [_tool_call(event, len(self.client_calls()) - 1)]}
            case Citation() if self.citations == "off":
                return {}
            case Citation():
                return {"citations": [_fields(event)]}
            case ConfirmationRequest():
                return {"confirmation_requests": [_fields(event)]}
            case ToolCall() | ToolResult():
                return {"tool_steps": [event.to_dict()]}
            case Curated():
                return {"curated": _fields(event)}
            case Grounding():
                return {"grounding": _fields(event)}
            case Moderated():
                return {"moderation": [_fields(event)]}
        return {}

    def finish_reason(self) -> str | None:
        """Why the answer ended, on OpenAI's wire (`function_call` for clients of the deprecated `functions`)."""
        reason = _finish(self.done.finish_reason)
        return "function_call" if reason == "tool_calls" and self.legacy_functions else reason

    def choice_logprobs(self, tokens: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
        """A choice's `logprobs`: these tokens (all shown so far by default), or None when not asked for."""
        if not self.logprobs:
            return None
        return {"content": self.token_logprobs if tokens is None else tokens, "refusal": None}

    def extras(self) -> dict[str, Any]:
        """gptbuilder's fields beside the text: citations, the curated mark, the grounding check and what moderation did."""
        extras: dict[str, Any] = {}
        if self.transcript.citations and self.citations != "off":
            extras["citations"] = [_fields(c) for c in self.transcript.citations]
        if self.transcript.curated:
            extras["curated"] = _fields(self.transcript.curated)
        if self.transcript.grounding:
            extras["grounding"] = _fields(self.transcript.grounding)
        if self.transcript.moderations:
            extras["moderation"] = [_fields(m) for m in self.transcript.moderations]
        return extras

    def footnotes(self) -> str:
        """With citations "inline": the sources as Markdown footnotes to append to the text, else ""."""
        if self.citations != "inline" or not self.transcript.citations:
            return ""
        return footnotes(self.transcript.citations)

    def message(self) -> dict[str, Any]:
        """The assistant message of a non-streamed answer (footnotes appended with citations "inline")."""
        transcript = self.transcript
        calls = [_tool_call(call, i) for i, call in enumerate(self.client_calls())]
        text = transcript.text + self.footnotes()
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None, "refusal": None}
        if calls and self.legacy_functions:
            message["function_call"] = calls[0]["function"]  # the deprecated API has one call per message
        elif calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        extras = self.extras()
        if "citations" in extras:
            message["citations"] = extras["citations"]
        steps = [s.to_dict() for s in transcript.steps if isinstance(s, ToolResult) or (isinstance(s, ToolCall) and not self.for_client(s))]
        if steps:
            message["tool_steps"] = steps
        if transcript.confirmations:
            message["confirmation_requests"] = [_fields(c) for c in transcript.confirmations]
        for name in ("curated", "grounding", "moderation"):
            if name in extras:
                message[name] = extras[name]
        return message


def footnotes(citations: Collection[Citation]) -> str:
    """Sources as Markdown footnotes under an answer, `[1]: file — place`: those the answer cites, else all.

    A "Sources:" line leads them: a `[1]: file` line of its own would be a Markdown link definition, which
    renderers hide, while after a line of text it is text.
    """
    shown = [c for c in citations if c.cited] or list(citations)
    return "\n\nSources:\n" + "\n".join(f"[{c.number}]: {_label(c)}" for c in shown)


def source_event(citation: Citation) -> dict[str, Any]:
    """A source as Open WebUI shows one: it hands a chunk's `event` to its chat as is, and a "source" event
    becomes a numbered source under the answer (in order, so [n] in the text opens the n-th)."""
    label = _label(citation)
    data = {
        "source": {"id": str(citation.number), "name": label},
        "document": [citation.text or label],  # private knowledge: the place, never the passage
        "metadata": [{"source": label, "name": citation.source, **citation.locator}],
    }
    return {"type": "source", "data": data}


def _label(citation: Citation) -> str:
    """`file — place in it` (page, headings or record), or the file alone."""
    locator = citation.locator
    place = f"page {locator['page']}" if locator.get("page") else " > ".join(map(str, locator.get("headings") or ()))
    if not place and locator.get("record") is not None:
        place = f"record {locator['record']}"
    return f"{citation.source} — {place}" if place else citation.source


def offer_client_tools(agent: Agent, options: dict[str, Any]) -> list[str]:
    """Leave out of ``options`` the caller's tools that one of the GPT's own shadows; return their names.

    A tool_choice that cannot apply (it names one of the GPT's tools, or needs a tool that is not
    offered) is a 400 naming tool_choice.
    """
    tools = options.get("client_tools")
    if not tools:
        return []
    try:
        offered = agent.offered_tools(tools, options.get("tool_choice"))
    except InputError as exc:
        raise APIError(400, str(exc), param="tool_choice", code="invalid_value") from None
    options["client_tools"] = offered
    return agent.shadowed_tools(tools)


def shadowed_headers(shadowed: list[str]) -> dict[str, str]:
    """The response header naming the caller's tools that were not offered, when there are any."""
    return {SHADOWED_HEADER: ",".join(shadowed)} if shadowed else {}


def tool_names(tools: Collection[dict[str, Any]] | None) -> frozenset[str]:
    """The names of OpenAI tool dicts."""
    return frozenset((tool.get("function") or {}).get("name", "") for tool in tools or ())


def _options(st: ServerState, body: ChatCompletionRequest | CompletionRequest, caller: Caller) -> dict[str, Any]:
    """The agent's options from a request's sampling fields (chat and legacy completions alike).

    Tool calls a turn pauses for approval are held in the database for this caller's key: only that key
    can settle them, on any replica. A body without the penalty and log-probability fields (another
    endpoint's) leaves them unset.
    """
    logprobs, top_logprobs = body.logprob_options() if hasattr(body, "logprob_options") else (False, None)
    return {
        "temperature": body.temperature,
        "top_p": body.top_p,
        "max_tokens": st.check_max_tokens(body.answer_tokens()),
        "stop": body.stop_list(),
        "seed": body.seed,
        "presence_penalty": getattr(body, "presence_penalty", None),
        "frequency_penalty": getattr(body, "frequency_penalty", None),
        "logit_bias": getattr(body, "logit_bias", None),
        "top_k": getattr(body, "top_k", None),
        "min_p": getattr(body, "min_p", None),
        "repeat_penalty": getattr(body, "repeat_penalty", None),
        "logprobs": logprobs,
        "top_logprobs": top_logprobs,
        "response_format": body.agent_response_format(),
        "owner": f"key:{caller.key_id}",
        "pending": st.pending,
    }


def _chat_options(st: ServerState, body: ChatCompletionRequest, caller: Caller) -> dict[str, Any]:
    choice, tools = body.client_tool_choice(), body.client_tools()
    if choice not in (None, "none", "auto") and not tools:
        raise APIError(400, "tool_choice needs 'tools'", param="tool_choice")
    tools = tools if choice != "none" else None
    return {
        **_options(st, body, caller),
        "approvals": body.approvals,
        **({"client_tools": tools, "tool_choice": choice} if tools else {}),
    }


async def check_response_format(agent: Agent, response_format: dict[str, Any] | None, param: str = "response_format") -> None:
    """400 naming ``param`` when the GPT's model cannot hold an answer to the schema; a local model compiles its grammar
    here, once, so that the answer does not fail after it started streaming (a remote model checks its own)."""
    schema = answer_schema(response_format)
    if schema is None:
        return
    try:
        await run_in_threadpool(check_json_schema, agent.model, schema)  # may load a local model's weights
    except InputError as exc:
        raise APIError(400, f"{param}: {exc}", param=param, code="invalid_value") from None


def citation_mode(requested: Citations | None, st: ServerState, response_format: dict[str, Any] | None) -> Citations:
    """The request's citations, else the server's; "field" for "inline" on a structured answer (footnotes would break its JSON)."""
    mode = requested or st.config.citations
    return "field" if mode == "inline" and response_format else mode


async def check_logit_bias(agent: Agent, bias: dict[int, float] | None) -> None:
    """400 naming `logit_bias` when it names a token id outside the GPT's vocabulary (a remote model checks its own)."""
    if not bias:
        return
    size = await run_in_threadpool(vocabulary_size, agent.model)  # may load a local model's weights
    outside = sorted(token for token in bias if token >= size) if size is not None else []
    if outside and size is not None:
        raise APIError(
            400,
            f"logit_bias names token id {outside[0]}, which is not in {agent.id}'s vocabulary (ids 0 to {size - 1})",
            param="logit_bias",
            code="invalid_value",
        )


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request, caller: Caller = Depends(authorized)) -> Any:
    """Chat with a GPT; `stream: true` answers as server-sent chunks.

    The caller's `tools` are offered beside the GPT's own; those named like one of the GPT's are not,
    and the answer names them (the x-gptbuilder-shadowed-tools header, a `shadowed_tools` field).
    """
    st = _state(request)
    messages = body.agent_messages()
    st.check_messages(messages)
    options = _chat_options(st, body, caller)
    agent = await st.agent(body.model)
    shadowed = offer_client_tools(agent, options)
    await check_logit_bias(agent, body.logit_bias)
    await check_response_format(agent, options["response_format"])
    started = time.perf_counter()
    events = await st.generate(agent, messages, options)
    reply = _Reply(
        tool_names(options.get("client_tools")), logprobs=options["logprobs"], legacy_functions=body.legacy_functions,
        citations=citation_mode(body.citations, st, options["response_format"]),
    )
    ids = _ids("chatcmpl", agent)
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        run = _Run(st, caller, agent, events, reply, ids, usage, started, "chat", shadowed)
        return _sse(_chat_chunks(run), st, shadowed_headers(shadowed))
    await _collect(request, events, reply)
    await _finished(st, caller, agent, reply.done, "chat", started)
    return JSONResponse(  # already JSON-ready: skip FastAPI's per-request re-encoding
        {
            **ids,
            **({"shadowed_tools": shadowed} if shadowed else {}),
            "object": "chat.completion",
            "choices": [
                {"index": 0, "message": reply.message(), "logprobs": reply.choice_logprobs(), "finish_reason": reply.finish_reason()}
            ],
            "usage": reply.done.usage.to_dict(),
        },
        headers=shadowed_headers(shadowed),
    )


@dataclass
class _Run:
    """One streamed answer in progress: who asked, which GPT, its events and how to label its chunks."""

    st: ServerState
    caller: Caller
    agent: Agent
    events: AsyncGenerator[Event, None]
    reply: _Reply
    ids: dict[str, Any]
    include_usage: bool
    started: float
    route: str
    shadowed: list[str] = field(default_factory=list)  # the caller's tools not offered (named like the GPT's)

    async def finish(self) -> None:
        """Account for the finished answer."""
        await _finished(self.st, self.caller, self.agent, self.reply.done, self.route, self.started)


async def _chat_chunks(run: _Run) -> AsyncGenerator[dict[str, Any], None]:
    st, events, reply, ids, started = run.st, run.events, run.reply, run.ids, run.started

    def chunk(
        delta: dict[str, Any], finish: str | None = None, logprobs: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return {**ids, "object": "chat.completion.chunk", "choices": [choice], **(extra or {})}

    yield chunk({"role": "assistant", "content": ""}, extra={"shadowed_tools": run.shadowed} if run.shadowed else None)
    first = True
    async for event in events:
        delta = reply.add(event)
        if delta:
            if first:
                st.metrics.first_token.labels("chat").observe(time.perf_counter() - started)
                first = False
            # A source rides in Open WebUI's shape too, as the chunk's `event` (other clients ignore the field).
            extra = {"event": source_event(event)} if isinstance(event, Citation) else None
            yield chunk(delta, logprobs=reply.choice_logprobs(reply.delta_logprobs) if "content" in delta else None, extra=extra)
    tail = reply.footnotes()
    if tail:
        yield chunk({"content": tail})
    yield chunk({}, reply.finish_reason())
    if run.include_usage:
        yield {**ids, "object": "chat.completion.chunk", "choices": [], "usage": reply.done.usage.to_dict()}
    await run.finish()


def _completion_body(request_body: CompletionRequest, gpt_id: str | None) -> str:
    model = gpt_id or request_body.model
    if not model:
        raise APIError(400, "name the GPT in 'model' (or use /v1/models/{id}/completions)", param="model")
    return model


async def _completions(body: CompletionRequest, request: Request, caller: Caller, gpt_id: str | None) -> Any:
    st = _state(request)
    if body.suffix:
        raise APIError(400, "'suffix' (fill-in-the-middle) is not supported", param="suffix")
    messages = [{"role": "user", "content": body.text()}]
    st.check_messages(messages)
    options = _options(st, body, caller)
    agent = await st.agent(_completion_body(body, gpt_id))
    await check_logit_bias(agent, body.logit_bias)
    await check_response_format(agent, options["response_format"])
    started = time.perf_counter()
    events = await st.generate(agent, messages, options)
    reply = _Reply(logprobs=options["logprobs"], citations=citation_mode(body.citations, st, options["response_format"]))
    ids = _ids("cmpl", agent)
    prefix = body.text() if body.echo else ""
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return _sse(_completion_chunks(_Run(st, caller, agent, events, reply, ids, usage, started, "completions"), prefix), st)
    await _collect(request, events, reply)
    await _finished(st, caller, agent, reply.done, "completions", started)
    finish = _finish(reply.done.finish_reason)
    logprobs = _legacy_logprobs(reply.token_logprobs, 0) if reply.logprobs else None
    text = prefix + reply.transcript.text + reply.footnotes()
    choice = {"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish, **reply.extras()}
    return JSONResponse({**ids, "object": "text_completion", "choices": [choice], "usage": reply.done.usage.to_dict()})


def _legacy_logprobs(tokens: list[dict[str, Any]], offset: int) -> dict[str, Any]:
    """Token log probabilities in legacy completions' shape; ``offset``: where the first token starts in the text."""
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token["token"])
    return {
        "tokens": [token["token"] for token in tokens],
        "token_logprobs": [token["logprob"] for token in tokens],
        "top_logprobs": [{top["token"]: top["logprob"] for top in token["top_logprobs"]} for token in tokens],
        "text_offset": offsets,
    }


async def _completion_chunks(run: _Run, prefix: str) -> AsyncGenerator[dict[str, Any], None]:
    ids, reply = run.ids, run.reply
    shown = 0  # characters of answer streamed so far: where the next chunk's tokens start

    def chunk(text: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish, **extra}
        return {**ids, "object": "text_completion", "choices": [choice]}

    if prefix:
        yield chunk(prefix)
    async for event in run.events:
        delta = reply.add(event)
        if "content" in delta:
            logprobs = _legacy_logprobs(reply.delta_logprobs, shown) if reply.logprobs else None
            shown += len(delta["content"])
            yield chunk(delta["content"], logprobs=logprobs)
        elif "citations" in delta or "curated" in delta or "moderation" in delta:
            yield chunk("", **delta)
    tail = reply.footnotes()
    if tail:
        yield chunk(tail)
    yield chunk("", _finish(reply.done.finish_reason))
    if run.include_usage:
        yield {**ids, "object": "text_completion", "choices": [], "usage": reply.done.usage.to_dict()}
    await run.finish()


@router.post("/completions")
async def completions(body: CompletionRequest, request: Request, caller: Caller = Depends(authorized)) -> Any:
    """Legacy completions: `prompt` in, `choices[0].text` out."""
    return await _completions(body, request, caller, None)


@router.post("/models/{gpt_id}/completions")
async def model_completions(gpt_id: str, body: CompletionRequest, request: Request, caller: Caller = Depends(authorized)) -> Any:
    """Legacy completions with the GPT in the path (the classic `requests.post(.../models/ID/completions)`)."""
    return await _completions(body, request, caller, gpt_id)


@router.get("/usage")
async def usage(
    request: Request,
    caller: Caller = Depends(authorized),
    start: date | None = Query(None, description="First day (YYYY-MM-DD)"),
    end: date | None = Query(None, description="Last day (YYYY-MM-DD)"),
    all_keys: bool = Query(False, alias="all", description="Every key's usage (admin keys only)"),
) -> dict[str, Any]:
    """The caller's own usage per GPT and day (admins may ask for everyone's), with estimated cost."""
    st = _state(request)
    if all_keys and not caller.admin:
        raise APIError(403, "only admin keys (GPTBUILDER_ADMIN_API_KEYS) may read every key's usage", param="all")
    lines = await run_in_threadpool(st.ledger.lines, key_id=None if all_keys else caller.key_id, start=start, end=end)
    data = [line.to_dict() for line in lines]
    costs = [line.cost for line in lines if line.cost is not None]
    total = {
        "requests": sum(line.requests for line in lines),
        "prompt_tokens": sum(line.prompt_tokens for line in lines),
        "completion_tokens": sum(line.completion_tokens for line in lines),
        "estimated_cost": round(sum(costs), 6) if costs else None,
    }
    return {"object": "list", "key_id": caller.key_id, "data": data, "total": total}


async def _collect(request: Request, events: AsyncGenerator[Event, None], reply: _Reply) -> None:
    """Gather a whole answer, stopping the generation if the client goes away first."""

    async def consume() -> None:
        try:
            async for event in events:
                reply.add(event)
        finally:
            await events.aclose()

    task = asyncio.ensure_future(consume())
    while True:
        done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
        if done:
            task.result()
            return
        if await request.is_disconnected():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise APIError(499, "the client closed the connection", code="client_closed")


async def _finished(st: ServerState, caller: Caller, agent: Agent, done: Done, route: str, started: float) -> None:
    st.metrics.latency.labels(route).observe(time.perf_counter() - started)
    st.account(caller.key_id, agent, done)


def _ids(prefix: str, agent: Agent) -> dict[str, Any]:
    return {"id": f"{prefix}-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": agent.id, "system_fingerprint": None}


def _sse(chunks: AsyncGenerator[dict[str, Any], None], st: ServerState, headers: dict[str, str] | None = None) -> EventSourceResponse:
    """Chunks as `data:` events, then `[DONE]`; an error mid-stream becomes a `data: {"error": …}` event."""

    async def events() -> AsyncGenerator[ServerSentEvent, None]:
        try:
            async for chunk in chunks:
                yield sse_event(json.dumps(chunk, ensure_ascii=False))
        finally:
            await chunks.aclose()

    async def failed(error: APIError) -> AsyncIterator[ServerSentEvent]:
        yield sse_event(json.dumps(error.body(), ensure_ascii=False))

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for event in guarded_stream(events(), failed):
            yield event
        yield sse_event("[DONE]")

    return sse_response(stream(), st, headers)
