"""`/v1`: every valid GPT is a model, in OpenAI's wire format (chat, legacy completions, models, usage)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from ..agent import Agent
from ..events import (
    Citation,
    ConfirmationRequest,
    Curated,
    Done,
    Event,
    Grounding,
    TextDelta,
    ToolCall,
    ToolResult,
    Transcript,
)
from .auth import Caller
from .errors import APIError, guarded_stream
from .schemas import ChatCompletionRequest, CompletionRequest
from .state import ServerState

router = APIRouter(prefix="/v1")
DISCONNECT_POLL_SECONDS = 0.5
# Events end with a blank line of bare "\n", as OpenAI and vLLM send them: hand-written clients split the
# stream on "\n\n" (sse_starlette's default is "\r\n", which the SSE spec allows but they do not expect).
SSE_SEPARATOR = "\n"


def sse_event(data: str, *, event: str | None = None) -> ServerSentEvent:
    """One server-sent event with OpenAI's line endings."""
    return ServerSentEvent(data, event=event, sep=SSE_SEPARATOR)


def sse_response(events: AsyncIterator[ServerSentEvent], st: ServerState) -> EventSourceResponse:
    """A text/event-stream response of ``events``, with keepalive pings, all with OpenAI's line endings."""
    return EventSourceResponse(events, ping=st.config.keepalive_seconds, sep=SSE_SEPARATOR, headers={"Cache-Control": "no-cache"})


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


def _fields(event: Citation | ConfirmationRequest | Curated | Grounding) -> dict[str, Any]:
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

    With client-side tools, the model's tool calls are OpenAI `tool_calls`; otherwise they are
    gptbuilder's `tool_steps`, shown beside the answer.
    """

    def __init__(self, client_tools: bool):
        self.client_tools = client_tools
        self.transcript = Transcript()

    @property
    def done(self) -> Done:
        """The answer's end (a stream that stopped without one is a 500: the agent always ends with Done)."""
        if self.transcript.done is None:  # pragma: no cover
            raise APIError(500, "the answer ended without finishing")
        return self.transcript.done

    def add(self, event: Event) -> dict[str, Any]:
        """Fold one event in; return the delta fields it adds to a streamed chunk."""
        self.transcript.add(event)
        match event:
            case TextDelta():
                return {"content": event.text}
            case ToolCall() if self.client_tools:
                return {"tool_calls": [_tool_call(event, len(self.transcript.tool_calls) - 1)]}
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
        return {}

    def extras(self) -> dict[str, Any]:
        """gptbuilder's fields beside the text: citations, the curated mark and the grounding check, when there are any."""
        extras: dict[str, Any] = {}
        if self.transcript.citations:
            extras["citations"] = [_fields(c) for c in self.transcript.citations]
        if self.transcript.curated:
            extras["curated"] = _fields(self.transcript.curated)
        if self.transcript.grounding:
            extras["grounding"] = _fields(self.transcript.grounding)
        return extras

    def message(self) -> dict[str, Any]:
        """The assistant message of a non-streamed answer."""
        transcript = self.transcript
        calls = [_tool_call(call, i) for i, call in enumerate(transcript.tool_calls)] if self.client_tools else []
        text = transcript.text
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None, "refusal": None}
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        extras = self.extras()
        if "citations" in extras:
            message["citations"] = extras["citations"]
        steps = [s.to_dict() for s in transcript.steps if isinstance(s, ToolResult) or (isinstance(s, ToolCall) and not self.client_tools)]
        if steps:
            message["tool_steps"] = steps
        if transcript.confirmations:
            message["confirmation_requests"] = [_fields(c) for c in transcript.confirmations]
        for name in ("curated", "grounding"):
            if name in extras:
                message[name] = extras[name]
        return message


def _options(st: ServerState, body: ChatCompletionRequest | CompletionRequest, caller: Caller) -> dict[str, Any]:
    """The agent's options from a request's sampling fields (chat and legacy completions alike).

    Tool calls a turn pauses for approval are held in the database for this caller's key: only that key
    can settle them, on any replica.
    """
    return {
        "temperature": body.temperature,
        "top_p": body.top_p,
        "max_tokens": st.check_max_tokens(body.answer_tokens()),
        "stop": body.stop_list(),
        "seed": body.seed,
        "owner": f"key:{caller.key_id}",
        "pending": st.pending,
    }


def _chat_options(st: ServerState, body: ChatCompletionRequest, caller: Caller) -> dict[str, Any]:
    if body.tool_choice not in (None, "none", "auto") and not body.tools:
        raise APIError(400, "tool_choice needs 'tools'", param="tool_choice")
    tools = [t.model_dump() for t in body.tools] if body.tools and body.tool_choice != "none" else None
    return {
        **_options(st, body, caller),
        "approvals": body.approvals,
        **({"client_tools": tools, "tool_choice": body.tool_choice} if tools else {}),
    }


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request, caller: Caller = Depends(authorized)) -> Any:
    """Chat with a GPT; `stream: true` answers as server-sent chunks."""
    st = _state(request)
    messages = [m.to_agent() for m in body.messages]
    st.check_messages(messages)
    options = _chat_options(st, body, caller)
    agent = await st.agent(body.model)
    started = time.perf_counter()
    events = await st.generate(agent, messages, options)
    reply = _Reply(client_tools=bool(options.get("client_tools")))
    ids = _ids("chatcmpl", agent)
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return _sse(_chat_chunks(_Run(st, caller, agent, events, reply, ids, usage, started, "chat")), st)
    await _collect(request, events, reply)
    await _finished(st, caller, agent, reply.done, "chat", started)
    return JSONResponse(  # already JSON-ready: skip FastAPI's per-request re-encoding
        {
            **ids,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": reply.message(), "logprobs": None, "finish_reason": _finish(reply.done.finish_reason)}],
            "usage": reply.done.usage.to_dict(),
        }
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

    async def finish(self) -> None:
        """Account for the finished answer."""
        await _finished(self.st, self.caller, self.agent, self.reply.done, self.route, self.started)


async def _chat_chunks(run: _Run) -> AsyncGenerator[dict[str, Any], None]:
    st, events, reply, ids, started = run.st, run.events, run.reply, run.ids, run.started

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**ids, "object": "chat.completion.chunk", "choices": [choice]}

    yield chunk({"role": "assistant", "content": ""})
    first = True
    async for event in events:
        delta = reply.add(event)
        if delta:
            if first:
                st.metrics.first_token.labels("chat").observe(time.perf_counter() - started)
                first = False
            yield chunk(delta)
    yield chunk({}, _finish(reply.done.finish_reason))
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
    started = time.perf_counter()
    events = await st.generate(agent, messages, options)
    reply = _Reply(client_tools=False)
    ids = _ids("cmpl", agent)
    prefix = body.text() if body.echo else ""
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return _sse(_completion_chunks(_Run(st, caller, agent, events, reply, ids, usage, started, "completions"), prefix), st)
    await _collect(request, events, reply)
    await _finished(st, caller, agent, reply.done, "completions", started)
    finish = _finish(reply.done.finish_reason)
    choice = {"text": prefix + reply.transcript.text, "index": 0, "logprobs": None, "finish_reason": finish, **reply.extras()}
    return JSONResponse({**ids, "object": "text_completion", "choices": [choice], "usage": reply.done.usage.to_dict()})


async def _completion_chunks(run: _Run, prefix: str) -> AsyncGenerator[dict[str, Any], None]:
    ids, reply = run.ids, run.reply

    def chunk(text: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish, **extra}
        return {**ids, "object": "text_completion", "choices": [choice]}

    if prefix:
        yield chunk(prefix)
    async for event in run.events:
        delta = reply.add(event)
        if "content" in delta:
            yield chunk(delta["content"])
        elif "citations" in delta or "curated" in delta:
            yield chunk("", **delta)
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


def _sse(chunks: AsyncGenerator[dict[str, Any], None], st: ServerState) -> EventSourceResponse:
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

    return sse_response(stream(), st)
