"""`/v1/responses`: OpenAI's Responses API over the chat endpoint's agent runs, conversations stored per API key."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field, ValidationError, field_validator
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from ..agent import Agent
from ..events import ConfirmationRequest, Done, Event, TextDelta, ToolCall
from .auth import Caller
from .errors import APIError, guarded_stream
from .openai_api import (
    Citations,
    _collect,
    _finished,
    _Reply,
    _state,
    authorized,
    check_response_format,
    citation_mode,
    offer_client_tools,
    shadowed_headers,
    sse_event,
    sse_response,
    tool_names,
)
from .responses_store import ResponseStore
from .schemas import FunctionDef, RequestBody, ResponseFormat
from .state import ServerState

router = APIRouter(prefix="/v1")
# gptbuilder's fields beside the answer, named as on a chat completion's message.
EXTRA_FIELDS = ("citations", "tool_steps", "confirmation_requests", "curated", "grounding", "moderation")
TEXT_PARTS = ("input_text", "output_text", "text")


class ResponseRequest(RequestBody):
    """`POST /v1/responses`."""

    model: str = Field(min_length=1, max_length=200)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    previous_response_id: str | None = Field(None, min_length=1, max_length=100)
    store: bool = True
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_output_tokens: int | None = Field(None, ge=1)
    truncation: Literal["auto", "disabled"] = "disabled"
    parallel_tool_calls: bool = True
    metadata: dict[str, str] | None = None
    user: str | None = Field(None, max_length=256)
    text: dict[str, Any] | None = None
    background: bool | None = None
    conversation: Any = None
    approvals: dict[str, bool] | None = Field(None, description="gptbuilder: {tool call id: approve?} for GPT actions")
    citations: Citations | None = Field(None, description="gptbuilder: field, inline (footnotes in the text too) or off")

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, metadata: dict[str, str] | None) -> dict[str, str] | None:
        if metadata and (len(metadata) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in metadata.items())):
            raise ValueError("at most 16 pairs, keys up to 64 characters and values up to 512")
        return metadata

    @field_validator("text")
    @classmethod
    def _text_format(cls, text: dict[str, Any] | None) -> dict[str, Any] | None:
        if text and text.get("format") is not None:
            ResponseFormat.checked(_chat_format(text["format"]), "text.format", flat=True)
        return text

    def response_format(self) -> dict[str, Any] | None:
        """`text.format` as chat's response_format for the agent (None for plain text)."""
        checked = ResponseFormat.checked(_chat_format((self.text or {}).get("format")), "text.format", flat=True)
        return checked.for_agent() if checked else None

    def echoed_format(self) -> dict[str, Any]:
        """`text` as the response object echoes it: the format in the Responses API's flat shape."""
        chat = self.response_format()
        if chat is None or chat["type"] != "json_schema":
            return {"format": chat or {"type": "text"}}
        return {"format": {"type": "json_schema", **chat["json_schema"]}}

    @field_validator("background")
    @classmethod
    def _foreground(cls, background: bool | None) -> bool | None:
        if background:
            raise ValueError("background responses are not supported; use stream: true for long answers")
        return background

    @field_validator("conversation")
    @classmethod
    def _no_conversation_objects(cls, conversation: Any) -> Any:
        if conversation is not None:
            raise ValueError("the Conversations API is not supported; continue a conversation with previous_response_id")
        return conversation


def _chat_format(format_: Any) -> Any:
    """A Responses `text.format` (json_schema's name, schema and strict beside its type) in chat's response_format shape."""
    if isinstance(format_, dict) and format_.get("type") == "json_schema":
        return {"type": "json_schema", "json_schema": {k: v for k, v in format_.items() if k != "type"}}
    return format_


def input_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request's input items as chat messages; 400 naming the item that cannot be read."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not items:
        raise APIError(400, "input is empty; send a text or at least one message", param="input")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"input[{index}]"
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = _function_call(item, where)
            if messages and messages[-1]["role"] == "assistant":  # calls join the answer they belong to
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = _string(item, "call_id", where)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": _text(item.get("output"), f"{where}.output")})
        else:
            raise APIError(
                400,
                f"{where}: items of type {kind!r} are not supported; send message, function_call and function_call_output items "
                "(or previous_response_id to continue a stored conversation)",
                param=where,
            )
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise APIError(400, f"{where}.role must be user, assistant, system or developer, not {role!r}", param=f"{where}.role")
    return {"role": "system" if role == "developer" else role, "content": _text(item.get("content"), f"{where}.content")}


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise APIError(400, f"{where} must be text or a list of input_text parts", param=where)
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            raise APIError(400, f"{where}: content parts of type {kind!r} are not supported; send input_text parts", param=where)
    return "\n".join(texts)


def _string(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise APIError(400, f"{where}.{name} is required (a non-empty string)", param=f"{where}.{name}")
    return value


def _function_call(item: dict[str, Any], where: str) -> dict[str, Any]:
    arguments = _string(item, "arguments", where)
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise APIError(400, f"{where}.arguments must be a JSON object, as the model sent it", param=f"{where}.arguments")
    name, call_id = _string(item, "name", where), _string(item, "call_id", where)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def client_tools(body: ResponseRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    """The function tools as chat tools for the agent, as the Responses API echoes them, and the chat tool_choice."""
    chat_tools: list[dict[str, Any]] = []
    echoed: list[dict[str, Any]] = []
    for index, tool in enumerate(body.tools or []):
        where = f"tools[{index}]"
        if tool.get("type") != "function":
            raise APIError(
                400,
                f"{where}: only function tools (run by your app) are supported, not {tool.get('type')!r}; "
                "a GPT's own tools and knowledge already run on the server",
                param=where,
            )
        try:
            fields = {k: v for k, v in tool.items() if k in ("name", "description", "parameters") and v is not None}
            function = FunctionDef.model_validate(fields)
        except ValidationError as exc:
            problem = exc.errors()[0]
            field = ".".join(str(p) for p in problem["loc"])
            raise APIError(400, f"{where}.{field}: {problem['msg']}", param=f"{where}.{field}") from None
        chat_tools.append({"type": "function", "function": function.model_dump()})
        echoed.append({"type": "function", **function.model_dump(), "strict": tool.get("strict")})
    choice = body.tool_choice
    if choice not in (None, "none", "auto") and not chat_tools:
        raise APIError(400, "tool_choice needs 'tools'", param="tool_choice")
    if isinstance(choice, dict):
        name = choice.get("name")
        if choice.get("type") != "function" or name not in [t["function"]["name"] for t in chat_tools]:
            raise APIError(400, "tool_choice must be none, auto, required or {type: function, name: <one of tools>}", param="tool_choice")
        choice = {"type": "function", "function": {"name": name}}
    return (chat_tools if choice != "none" else []), echoed, choice


def _usage(done: Done) -> dict[str, Any]:
    usage = done.usage
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _call(call: ToolCall | ConfirmationRequest) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}}


class _Answer(_Reply):
    """A response being built: the agent's events folded as chat folds them, and turned into output items and typed events."""

    def __init__(self, response: dict[str, Any], *, client_tools: frozenset[str], citations: Citations = "field"):
        super().__init__(client_tools, citations=citations)
        self.response = response
        self._pending: list[dict[str, Any]] = []
        self._sequence = 0
        self._message: dict[str, Any] | None = None  # the assistant message item still receiving text
        self._index: dict[str, int] = {}  # each output item's place, by item id
        self._emit("response.created", response=response)
        self._emit("response.in_progress", response=response)

    def _emit(self, kind: str, **fields: Any) -> None:
        self._pending.append({"type": kind, "sequence_number": self._sequence, **copy.deepcopy(fields)})
        self._sequence += 1

    def drain(self) -> list[dict[str, Any]]:
        """The typed events not yet sent."""
        pending, self._pending = self._pending, []
        return pending

    def add(self, event: Event) -> dict[str, Any]:
        """Fold one event in, queueing the stream events it makes."""
        delta = super().add(event)
        if isinstance(event, TextDelta) and event.text:
            item = self._open_message()
            item["content"][0]["text"] += event.text
            self._emit("response.output_text.delta", **self._where(item), content_index=0, delta=event.text, logprobs=[])
        elif isinstance(event, ToolCall) and self.for_client(event):
            self._close_message("completed")
            self._function_call(event)
        return delta

    def _item(self, item: dict[str, Any]) -> dict[str, Any]:
        self._index[item["id"]] = len(self.response["output"])
        self.response["output"].append(item)
        self._emit("response.output_item.added", output_index=self._index[item["id"]], item=item)
        return item

    def _where(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"item_id": item["id"], "output_index": self._index[item["id"]]}

    def _open_message(self) -> dict[str, Any]:
        if self._message is None:
            fresh = {"id": f"msg_{uuid.uuid4().hex}", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
            item = self._item(fresh)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            item["content"].append(part)
            self._emit("response.content_part.added", **self._where(item), content_index=0, part=part)
            self._message = item
        return self._message

    def _close_message(self, status: str) -> None:
        item, self._message = self._message, None
        if item is None:
            return
        part, where = item["content"][0], self._where(item)
        self._emit("response.output_text.done", **where, content_index=0, text=part["text"], logprobs=[])
        self._emit("response.content_part.done", **where, content_index=0, part=part)
        item["status"] = status
        self._emit("response.output_item.done", output_index=where["output_index"], item=item)

    def _function_call(self, call: ToolCall) -> None:
        fresh = {"id": f"fc_{uuid.uuid4().hex}", "type": "function_call", "status": "in_progress", "call_id": call.id, "name": call.name}
        item = self._item({**fresh, "arguments": ""})
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        where = self._where(item)
        self._emit("response.function_call_arguments.delta", **where, delta=arguments)
        item.update(arguments=arguments, status="completed")
        self._emit("response.function_call_arguments.done", **where, arguments=arguments, name=call.name)
        self._emit("response.output_item.done", output_index=where["output_index"], item=item)

    def finish(self) -> None:
        """Complete the response object from the answer's end: status, usage and gptbuilder's extras."""
        done = self.done
        incomplete = done.finish_reason in ("length", "content_filter")
        reason = "max_output_tokens" if done.finish_reason == "length" else "content_filter"
        tail = self.footnotes()
        if tail:
            self.add(TextDelta(tail))  # citations "inline": the sources close the text
        self._close_message("incomplete" if incomplete else "completed")
        extras = {k: v for k, v in self.message().items() if k in EXTRA_FIELDS}
        self.response.update(
            status="incomplete" if incomplete else "completed",
            completed_at=None if incomplete else int(time.time()),
            incomplete_details={"reason": reason} if incomplete else None,
            usage=_usage(done),
            **extras,
        )

    def announce(self) -> None:
        """Queue the last event: the finished response."""
        status = self.response["status"]
        self._emit("response.completed" if status == "completed" else f"response.{status}", response=self.response)

    def failed(self, error: APIError) -> list[dict[str, Any]]:
        """The events that end a stream that failed midway: an error, then the response marked failed."""
        self._close_message("incomplete")
        code = error.body()["error"]["code"]
        self._emit("error", code=code, message=error.message, param=error.param)
        self.response.update(status="failed", error={"code": code, "message": error.message})
        self._emit("response.failed", response=self.response)
        return self.drain()

    def turn(self) -> dict[str, Any]:
        """The answer as the assistant message the next turn's conversation holds (client calls and held calls included)."""
        transcript = self.transcript
        calls: list[ToolCall | ConfirmationRequest] = [*self.client_calls(), *transcript.confirmations]
        message: dict[str, Any] = {"role": "assistant", "content": transcript.text}
        if calls:
            message["tool_calls"] = [_call(call) for call in calls]
        return message


@dataclass
class _Turn:
    """One response in progress: who asked, which GPT, its events, and what is kept once it is done."""

    st: ServerState
    caller: Caller
    agent: Agent
    events: AsyncGenerator[Event, None]
    answer: _Answer
    asked: list[dict[str, Any]]  # this turn's input, as chat messages
    started: float
    store: bool

    async def finish(self) -> None:
        """Complete the response, keep it (unless `store: false`) before the client hears it is done, account for it."""
        self.answer.finish()
        if self.store:
            messages = [*self.asked, self.answer.turn()]
            await run_in_threadpool(_store(self.st).save, _owner(self.caller), self.answer.response, messages)
        self.answer.announce()
        await _finished(self.st, self.caller, self.agent, self.answer.done, "responses", self.started)


def _store(st: ServerState) -> ResponseStore:
    return ResponseStore(st.history.db)


def _owner(caller: Caller) -> str:
    return f"key:{caller.key_id}"


def _not_found(response_id: str, *, param: str | None = None) -> APIError:
    what = "Previous response" if param else "Response"
    return APIError(404, f"{what} with id {response_id!r} not found.", param=param, code="response_not_found")


def _bounded(history: list[dict[str, Any]], room: int) -> list[dict[str, Any]]:
    """The newest stored messages that fit the message cap, starting at a user message (the model's context is fitted later)."""
    kept = history[-room:] if room > 0 else []
    while kept and kept[0]["role"] != "user":
        kept = kept[1:]
    return kept


@router.post("/responses")
async def create_response(body: ResponseRequest, request: Request, caller: Caller = Depends(authorized)) -> Any:
    """Answer with a GPT in the Responses API's shape; `stream: true` sends its typed events."""
    st = _state(request)
    asked = input_messages(body.input)
    tools, echoed, choice = client_tools(body)
    framing = [{"role": "system", "content": body.instructions}] if body.instructions else []
    history: list[dict[str, Any]] = []
    if body.previous_response_id:
        cap = st.config.max_messages
        found = await run_in_threadpool(_store(st).conversation, _owner(caller), body.previous_response_id, max_turns=cap // 2 + 1)
        if found is None:
            raise _not_found(body.previous_response_id, param="previous_response_id")
        history = _bounded(found, cap - len(asked) - len(framing))
    messages = [*framing, *history, *asked]
    st.check_messages(messages)
    options: dict[str, Any] = {
        "temperature": body.temperature,
        "top_p": body.top_p,
        "max_tokens": st.check_max_tokens(body.max_output_tokens),
        "approvals": body.approvals,
        "owner": _owner(caller),
        "pending": st.pending,
        "response_format": body.response_format(),
        **({"client_tools": tools, "tool_choice": choice} if tools else {}),
    }
    agent = await st.agent(body.model)
    shadowed = offer_client_tools(agent, options)
    await check_response_format(agent, options["response_format"], "text.format")
    started = time.perf_counter()
    events = await st.generate(agent, messages, options)
    names = tool_names(options.get("client_tools"))
    citations = citation_mode(body.citations, st, options["response_format"])
    answer = _Answer(_response(body, agent, echoed), client_tools=names, citations=citations)
    if shadowed:
        answer.response["shadowed_tools"] = shadowed
    turn = _Turn(st, caller, agent, events, answer, asked, started, body.store)
    if body.stream:
        return _typed_sse(_stream(turn), answer, st, shadowed_headers(shadowed))
    await _collect(request, events, answer)
    await turn.finish()
    return JSONResponse(answer.response, headers=shadowed_headers(shadowed))


def _response(body: ResponseRequest, agent: Agent, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The response object as it starts: in progress, no output yet, the request's settings echoed."""
    return {
        "id": f"resp_{uuid.uuid4().hex}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": agent.id,
        "output": [],
        "parallel_tool_calls": body.parallel_tool_calls,
        "previous_response_id": body.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "store": body.store,
        "temperature": body.temperature,
        "text": body.echoed_format(),
        "tool_choice": body.tool_choice or "auto",
        "tools": tools,
        "top_p": body.top_p,
        "truncation": body.truncation,
        "usage": None,
        "user": body.user,
        "metadata": body.metadata or {},
    }


async def _stream(turn: _Turn) -> AsyncGenerator[dict[str, Any], None]:
    answer, first = turn.answer, True
    try:
        for event in answer.drain():
            yield event
        async for step in turn.events:
            answer.add(step)
            if first and isinstance(step, TextDelta):
                turn.st.metrics.first_token.labels("responses").observe(time.perf_counter() - turn.started)
                first = False
            for event in answer.drain():
                yield event
        await turn.finish()
        for event in answer.drain():
            yield event
    finally:
        await turn.events.aclose()


def _typed_sse(
    events: AsyncGenerator[dict[str, Any], None], answer: _Answer, st: ServerState, headers: dict[str, str] | None = None
) -> EventSourceResponse:
    """Each event as `event: <type>` with its JSON; a failure midway ends with `error` and `response.failed`, never a traceback."""

    def sse(event: dict[str, Any]) -> ServerSentEvent:
        return sse_event(json.dumps(event, ensure_ascii=False), event=event["type"])

    async def typed() -> AsyncGenerator[ServerSentEvent, None]:
        try:
            async for event in events:
                yield sse(event)
        finally:
            await events.aclose()

    async def failed(error: APIError) -> AsyncIterator[ServerSentEvent]:
        for event in answer.failed(error):
            yield sse(event)

    return sse_response(guarded_stream(typed(), failed), st, headers)


@router.get("/responses/{response_id}")
async def get_response(response_id: str, request: Request, caller: Caller = Depends(authorized)) -> Any:
    """A stored response of the caller's own (404 for anyone else's, as for one that never existed)."""
    body = await run_in_threadpool(_store(_state(request)).get, _owner(caller), response_id)
    if body is None:
        raise _not_found(response_id)
    return JSONResponse(body)


@router.delete("/responses/{response_id}")
async def delete_response(response_id: str, request: Request, caller: Caller = Depends(authorized)) -> dict[str, Any]:
    """Forget a stored response of the caller's own; later turns no longer see it."""
    if not await run_in_threadpool(_store(_state(request)).delete, _owner(caller), response_id):
        raise _not_found(response_id)
    return {"id": response_id, "object": "response", "deleted": True}
