"""The model's part of a turn: a plain answer, the GPT's own tool loop, or the caller's tools."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage

from ..errors import ModelError
from ..events import Event, TextDelta, TokenLogprobs, ToolCall, ToolResult, Usage
from .approvals import clip, confirmation_events, needing_confirmation
from .base import RunResult, Turn, from_backend

if TYPE_CHECKING:
    from langchain_core.language_models import LanguageModelInput
    from langchain_core.runnables import Runnable
    from langchain_core.tools import BaseTool


class Answer:
    """One model call, streamed as text."""

    def __init__(self, model: Runnable[LanguageModelInput, BaseMessage]):
        self.model = model

    def __call__(self, turn: Turn, prompt: list[BaseMessage]) -> Generator[Event, None, RunResult]:
        message: AIMessageChunk | None = None
        finish_reason, usage = "stop", None
        for piece in from_backend(self.model.stream(prompt, **turn.options.model_kwargs()), turn.gpt_id):
            chunk = cast(AIMessageChunk, piece)  # a chat model streams AIMessageChunks, bound or not
            message = chunk if message is None else message + chunk
            yield from _logprobs(chunk)
            text = _text(chunk)
            if text:
                yield TextDelta(text)
            finish_reason = chunk.response_metadata.get("finish_reason") or finish_reason
            usage = _usage(chunk.usage_metadata) or usage
        return RunResult(finish_reason, usage, message)


class ClientTools:
    """One model call with the caller's tools bound: text streams; chosen calls go back for the caller to run."""

    def __init__(self, model: BaseChatModel):
        self.model = model

    def __call__(self, turn: Turn, prompt: list[BaseMessage]) -> Generator[Event, None, RunResult]:
        bound = self.model.bind_tools(list(turn.client_tools), tool_choice=turn.tool_choice)
        result = yield from Answer(bound)(turn, prompt)
        calls = result.message.tool_calls if result.message is not None else []
        for call in calls:
            yield ToolCall(call.get("id") or f"call_{len(calls)}", call["name"], dict(call["args"]))
        # A backend may say "tool_calls" for calls that did not parse: then it answered, and stopped.
        finish_reason = "tool_calls" if calls else ("stop" if result.finish_reason == "tool_calls" else result.finish_reason)
        return RunResult(finish_reason, result.usage, result.message)


class ToolLoop:
    """The GPT's own tools (langchain's create_agent): model → tools → model until an answer or the call limit.

    A step that calls a tool needing confirmation stops before the tools node runs: nothing in that step
    executes until the user decides, on the next turn (see approvals.ResolveApprovals). The caller's tools
    (`turn.client_tools`) are offered beside the GPT's: a step that calls one ends the answer with those
    calls (finish_reason "tool_calls") and runs nothing, the GPT's calls in that step included; the
    caller sends the results back and the loop goes on from them (see client_tools.ClientToolsMiddleware).
    """

    def __init__(self, model: BaseChatModel, tools: Sequence[BaseTool], *, max_calls: int):
        self.model = model
        self.tools = list(tools)
        self.max_calls = max_calls
        self.needs_confirmation = needing_confirmation(tools)

    def __call__(self, turn: Turn, prompt: list[BaseMessage]) -> Generator[Event, None, RunResult]:
        from langchain.agents import create_agent
        from langchain.agents.middleware import ToolCallLimitMiddleware

        options = turn.options.model_kwargs()
        fields = type(self.model).model_fields
        model = self.model.model_copy(update={k: v for k, v in options.items() if k in fields}) if options else self.model
        middleware: list[Any] = [ToolCallLimitMiddleware(run_limit=self.max_calls, exit_behavior="continue")]
        client = None
        if turn.client_tools:
            from .client_tools import ClientToolsMiddleware

            # Last in the list, so its after_model runs first and ends a client step before the limit counts it.
            client = ClientToolsMiddleware(turn.client_tools, turn.tool_choice, first_call=len(prompt) - 1)
            middleware.append(client)
        graph = create_agent(model, [*self.tools, *turn.client_tools], system_prompt=prompt[0].text, middleware=middleware)
        # Past the limit, calls are answered "limit exceeded" and the model must answer; a model that
        # keeps calling anyway is stopped by the recursion limit.
        steps = graph.stream(
            cast(Any, {"messages": prompt[1:]}), {"recursion_limit": 4 * self.max_calls + 10}, stream_mode=["messages", "updates"]
        )
        stream = from_backend(_stop_runaway(steps, turn.gpt_id, self.max_calls), turn.gpt_id)
        usage, last = Usage(), None
        names: dict[str, str] = {}
        for mode, data in stream:
            if mode == "messages":
                chunk, meta = data
                if isinstance(chunk, AIMessageChunk) and meta.get("langgraph_node") == "model" and _text(chunk):
                    yield from _logprobs(chunk)
                    yield TextDelta(_text(chunk))
                continue
            for message in (m for update in data.values() for m in (update or {}).get("messages", [])):
                if isinstance(message, AIMessage):
                    last, usage = message, _add(usage, _usage(message.usage_metadata))
                    theirs = client.calls(message) if client is not None else []
                    if theirs:
                        stream.close()  # the graph ends here anyway (the middleware): the caller runs these
                        for index, asked in enumerate(theirs):
                            yield ToolCall(str(asked.get("id") or f"call_{index}"), asked["name"], dict(asked["args"]))
                        return RunResult("tool_calls", usage, message)
                    if any(call["name"] in self.needs_confirmation for call in message.tool_calls):
                        stream.close()
                        turn.pending.hold(turn.owner, turn.gpt_id, message.tool_calls)  # the next turn may run these
                        yield from confirmation_events(message, self.needs_confirmation)
                        return RunResult("confirmation_required", usage, message)
                    for call in message.tool_calls:
                        names[str(call["id"])] = call["name"]
                        yield ToolCall(str(call["id"]), call["name"], dict(call["args"]))
                elif isinstance(message, ToolMessage):
                    name = message.name or names.get(message.tool_call_id, "tool")
                    yield ToolResult(message.tool_call_id, name, clip(message.text), message.status == "error")
        finish_reason = (last.response_metadata.get("finish_reason") if last is not None else None) or "stop"
        return RunResult("stop" if finish_reason == "tool_calls" else finish_reason, usage, last)


def _stop_runaway(steps: Iterator[Any], gpt_id: str, limit: int) -> Iterator[Any]:
    from langgraph.errors import GraphRecursionError

    try:
        yield from steps
    except GraphRecursionError:
        raise ModelError(
            f"{gpt_id}: the model kept calling tools after the limit of {limit} (max_tool_calls) without answering"
        ) from None


def _text(chunk: BaseMessage) -> str:
    content = chunk.content
    return content if isinstance(content, str) else chunk.text


def _logprobs(chunk: BaseMessage) -> Iterator[TokenLogprobs]:
    """The chunk's token log probabilities (`response_metadata["logprobs"]`, as langchain-openai and local models put them)."""
    content = (chunk.response_metadata.get("logprobs") or {}).get("content")
    if content:
        yield TokenLogprobs(tuple(content))


def _usage(metadata: Any) -> Usage | None:
    """langchain's usage metadata (input/output tokens) as gptbuilder's Usage."""
    if not metadata:
        return None
    return Usage(metadata.get("input_tokens", 0), metadata.get("output_tokens", 0))


def _add(total: Usage, step: Usage | None) -> Usage:
    if step is None:
        return total
    return Usage(total.prompt_tokens + step.prompt_tokens, total.completion_tokens + step.completion_tokens)
