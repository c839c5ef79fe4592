"""Compile a loaded spec into an agent that streams typed events."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ToolMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    convert_to_messages,
    trim_messages,
)

from .errors import GPTBuilderError, InputError, ModelError
from .events import Citation, ConfirmationRequest, Done, Event, TextDelta, ToolCall, ToolResult, Usage
from .loader import LoadedSpec
from .models.registry import DEFAULT_MAX_TOKENS, context_window_of, count_tokens

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from .curated import CuratedAnswers
    from .knowledge.retriever import KnowledgeBase, Retrieval

logger = logging.getLogger("gptbuilder")

MAX_MESSAGE_CHARS = 100_000
TOOL_PROTOCOL_TOKENS = 300
MAX_MESSAGES = 1_000

MessagesLike = str | Sequence[BaseMessage | dict[str, Any] | tuple[str, str]]

DECLINED = "The user declined to run {name}; it was not run."
UNANSWERED = "{name} was not run: it needs the user's approval and the user did not give it (treated as declined)."


@dataclass(frozen=True)
class Reply:
    """A complete answer: what `Agent.chat` returns."""

    text: str
    finish_reason: str
    usage: Usage


class Agent:
    """One GPT ready to chat: its spec, its model and the prompt built from them."""

    def __init__(
        self,
        loaded: LoadedSpec,
        model: BaseChatModel,
        *,
        knowledge: KnowledgeBase | None = None,
        tools: Sequence[BaseTool] = (),
        context_window: int | None = None,
        curated: CuratedAnswers | None = None,
    ):
        self.loaded = loaded
        self.curated = curated
        self.model = model
        self.knowledge = knowledge
        self.tools = list(tools)
        self._tool_tokens: int | None = None
        self.needs_confirmation = frozenset(t.name for t in self.tools if (t.metadata or {}).get("requires_confirmation"))
        self._context_window = context_window

    @property
    def context_window(self) -> int:
        """Tokens the model sees; asked of the model only when needed, since that may load its weights."""
        if self._context_window is None:
            self._context_window = context_window_of(self.model, self.loaded.spec.model)
        return self._context_window

    @property
    def id(self) -> str:
        """The GPT's id (its file stem)."""
        return self.loaded.id

    def system_prompt(self, retrieval: Retrieval | None = None) -> str:
        """The system prompt: the GPT's instructions, then the knowledge sources found for the question."""
        if retrieval is None:
            return self.loaded.instructions
        from .knowledge.retriever import context_block

        return f"{self.loaded.instructions}\n\n{context_block(retrieval)}"

    def prepare(
        self, messages: MessagesLike, *, max_tokens: int | None = None, retrieval: Retrieval | None = None
    ) -> list[BaseMessage]:
        """Validate a conversation and fit it, with the system prompt, into the model's context."""
        return self._fit(_to_messages(messages), max_tokens=max_tokens, retrieval=retrieval)

    def _fit(
        self, history: list[BaseMessage], *, max_tokens: int | None, retrieval: Retrieval | None
    ) -> list[BaseMessage]:
        """Trim an already validated conversation, oldest turns first, to fit beside the system prompt.

        System (and developer) messages the caller sent join the GPT's instructions, after them.
        """
        extra = [m.text for m in history if isinstance(m, SystemMessage) and m.text.strip()]
        history = [m for m in history if not isinstance(m, SystemMessage)]
        system = SystemMessage("\n\n".join([self.system_prompt(retrieval), *extra]))
        answer_budget = max_tokens or self.loaded.spec.model.max_tokens or DEFAULT_MAX_TOKENS
        budget = self.context_window - answer_budget - self._tool_overhead()
        system_tokens = count_tokens(self.model, [system])
        if budget - system_tokens < 16:
            raise InputError(
                f"the instructions of {self.id} take {system_tokens} tokens, leaving no room in the model's "
                f"{self.context_window}-token context window for a {answer_budget}-token answer; "
                "shorten them, lower model.max_tokens or raise model.context_window"
            )
        sizes: dict[int, int] = {}  # trim_messages recounts growing slices: tokenize each message once

        def counter(msgs: Sequence[BaseMessage]) -> int:
            for message in msgs:
                if id(message) not in sizes:
                    sizes[id(message)] = count_tokens(self.model, [message])
            return sum(sizes[id(m)] for m in msgs)

        kept = trim_messages(
            [system, *history],
            max_tokens=budget,
            token_counter=counter,
            strategy="last",
            include_system=True,
            start_on="human",
            allow_partial=False,
        )
        if not kept or kept[-1] is not history[-1]:
            needed = count_tokens(self.model, [history[-1]])
            raise InputError(
                f"the message is about {needed:,} tokens, but {self.id}'s model has room for "
                f"{budget - system_tokens:,} after its instructions and a {answer_budget}-token answer; "
                "shorten the message"
            )
        return kept

    def stream(
        self,
        messages: MessagesLike,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        approvals: Mapping[str, bool] | None = None,
        client_tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: Any = None,
    ) -> Iterator[Event]:
        """Answer the conversation: text deltas, then the knowledge sources as citations, then Done.

        ``client_tools`` (OpenAI tool dicts) are tools the caller runs: a call of one ends the answer with
        ToolCall events and finish_reason "tool_calls"; the caller sends the results back as tool messages.

        A call to a tool that needs confirmation is not run: the answer ends with a ConfirmationRequest per
        such call and finish_reason "confirmation_required" (other calls the model made in the same step
        are held with it). The next turn sends the conversation with that assistant message (its tool
        calls) and the user's new message, plus ``approvals`` {call id: True/False}: approved calls run
        first, the others are answered "declined" to the model; a pending call without a decision is declined.
        """
        history = _to_messages(messages)
        if client_tools and self.tools:
            raise InputError(
                f"{self.id} runs its own tools, so it does not take client-side tools; send the request without 'tools'"
            )
        if not client_tools:
            history, resolved = self._resolve_pending(history, approvals or {})
            yield from resolved
        if self.curated is not None and isinstance(history[-1], HumanMessage):
            from .curated import curated_events

            match = self.curated.match(history[-1].text)
            if match is not None:  # a vetted answer: no retrieval, no model
                yield from curated_events(match)
                return
        retrieval = None
        if self.knowledge is not None:
            from .knowledge.retriever import NO_MATCH_MESSAGE

            question = next(m for m in reversed(history) if isinstance(m, HumanMessage))
            retrieval = self.knowledge.retrieve(question.text)
            if not retrieval.sources and self.knowledge.config.on_no_match == "refuse":
                yield TextDelta(NO_MATCH_MESSAGE)
                yield Done(NO_MATCH_MESSAGE, finish_reason="stop", usage=Usage())
                return
        prompt = self._fit(history, max_tokens=max_tokens, retrieval=retrieval)
        citations = _citation_filter(retrieval)
        options = {
            key: value
            for key, value in {
                "temperature": temperature,
                "top_p": top_p,
                "max_tokens": max_tokens,
                "stop": list(stop) if stop else None,
                "seed": seed,
            }.items()
            if value is not None
        }
        parts: list[str] = []
        outcome: dict[str, Any] = {"finish_reason": "stop", "usage": None}
        if client_tools:
            steps = self._run_client_tools(prompt, options, outcome, client_tools, tool_choice)
        elif self.tools:
            steps = self._run_tools(prompt, options, outcome)
        else:
            steps = self._run_model(prompt, options, outcome)
        try:
            for event in steps:
                if isinstance(event, TextDelta):
                    text = citations.feed(event.text) if citations else event.text
                    if text:
                        parts.append(text)
                        yield TextDelta(text)
                else:
                    yield event
        except GPTBuilderError:
            raise
        except Exception as exc:  # a backend's own error type: translate at this edge
            raise ModelError(f"{self.id}: the model failed: {exc}") from exc
        finish_reason, usage = outcome["finish_reason"], outcome["usage"]
        if citations:
            tail = citations.flush()
            if tail:
                parts.append(tail)
                yield TextDelta(tail)
            for source in retrieval.sources:
                yield Citation(source.number, source.source, source.text, source.locator, source.number in citations.cited)
        text = "".join(parts)
        if usage is None:
            usage = {
                "input_tokens": count_tokens(self.model, prompt),
                "output_tokens": count_tokens(self.model, [AIMessageChunk(text)]) if text else 0,
            }
        yield Done(
            text,
            finish_reason=_finish_reason(finish_reason),
            usage=Usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
        )

    def _resolve_pending(
        self, history: list[BaseMessage], approvals: Mapping[str, bool]
    ) -> tuple[list[BaseMessage], list[Event]]:
        """Answer every tool call the history left pending: run the approved ones, decline the rest.

        The tool messages go right after the assistant message that made the calls, where the model APIs
        expect them. Calls to tools that need no confirmation (held back with ones that do) run unless denied.
        """
        answered = {m.tool_call_id for m in history if isinstance(m, ToolMessage)}
        pending = [
            (index, call)
            for index, message in enumerate(history)
            if isinstance(message, AIMessage)
            for call in message.tool_calls
            if call.get("id") and call["id"] not in answered
        ]
        ids = {call["id"] for _, call in pending}
        unknown = [key for key in approvals if key not in ids]
        if unknown:
            waiting = ", ".join(f"{c['id']} ({c['name']})" for _, c in pending) or "none"
            raise InputError(
                f"approval for {', '.join(map(repr, unknown))} matches no pending tool call; pending calls: {waiting}"
            )
        if not pending:
            return history, []
        tools = {tool.name: tool for tool in self.tools}
        events: list[Event] = []
        inserted: dict[int, list[BaseMessage]] = {}
        for index, call in pending:
            name, decision = call["name"], approvals.get(call["id"])
            needs = name in self.needs_confirmation
            if decision is True or (decision is None and not needs and name in tools):
                events.append(ToolCall(call["id"], name, dict(call["args"])))
                reply = _invoke_tool(tools.get(name), call)
            elif decision is False or approvals:
                reply = ToolMessage(DECLINED.format(name=name), tool_call_id=call["id"], name=name, status="error")
            else:
                text = UNANSWERED.format(name=name) if needs else f"{name} was not run: there is no such tool."
                reply = ToolMessage(text, tool_call_id=call["id"], name=name, status="error")
            events.append(ToolResult(call["id"], name, _clip(reply.text), reply.status == "error"))
            inserted.setdefault(index, []).append(reply)
        resolved: list[BaseMessage] = []
        for index, message in enumerate(history):
            resolved.append(message)
            resolved.extend(inserted.get(index, []))
        return resolved, events

    def _tool_overhead(self) -> int:
        """Tokens the tool definitions add to every model call (schemas, or a local model's tool protocol)."""
        if not self.tools:
            return 0
        if self._tool_tokens is None:
            from .models.tool_calling import openai_tools

            schemas = SystemMessage(json.dumps(openai_tools(self.tools)))
            # The local protocol also adds instructions and worked-example turns: allow for them.
            self._tool_tokens = count_tokens(self.model, [schemas]) + TOOL_PROTOCOL_TOKENS
        return self._tool_tokens

    def _run_model(
        self, prompt: list[BaseMessage], options: dict[str, Any], outcome: dict[str, Any], model: Any = None
    ) -> Iterator[Event]:
        """One model call, streamed; finish reason, usage and the whole message land in ``outcome``."""
        for chunk in (model or self.model).stream(prompt, **options):
            outcome["message"] = chunk if outcome.get("message") is None else outcome["message"] + chunk
            text = _chunk_text(chunk)
            if text:
                yield TextDelta(text)
            outcome["finish_reason"] = chunk.response_metadata.get("finish_reason") or outcome["finish_reason"]
            if chunk.usage_metadata:
                outcome["usage"] = dict(chunk.usage_metadata)

    def _run_client_tools(
        self,
        prompt: list[BaseMessage],
        options: dict[str, Any],
        outcome: dict[str, Any],
        tools: Sequence[dict[str, Any]],
        tool_choice: Any,
    ) -> Iterator[Event]:
        """One model call with the caller's tools bound: text streams, calls come back for the caller to run."""
        model = self.model.bind_tools(list(tools), tool_choice=tool_choice)
        yield from self._run_model(prompt, options, outcome, model)
        message = outcome.get("message")
        calls = message.tool_calls if message is not None else []
        for call in calls:
            yield ToolCall(call.get("id") or f"call_{len(calls)}", call["name"], dict(call["args"]))
        if calls:
            outcome["finish_reason"] = "tool_calls"
        elif outcome["finish_reason"] == "tool_calls":
            outcome["finish_reason"] = "stop"

    def _run_tools(self, prompt: list[BaseMessage], options: dict[str, Any], outcome: dict[str, Any]) -> Iterator[Event]:
        """The tool loop (langchain's create_agent): model → tools → model until an answer or the call limit."""
        from langchain.agents import create_agent
        from langchain.agents.middleware import ToolCallLimitMiddleware

        fields = type(self.model).model_fields
        model = self.model.model_copy(update={k: v for k, v in options.items() if k in fields}) if options else self.model
        limit = self.loaded.spec.max_tool_calls
        graph = create_agent(
            model,
            self.tools,
            system_prompt=prompt[0].text,
            middleware=[ToolCallLimitMiddleware(run_limit=limit, exit_behavior="continue")],
        )
        usage = {"input_tokens": 0, "output_tokens": 0}
        names: dict[str, str] = {}
        # Past the limit, calls are answered "limit exceeded" and the model must answer; a model that
        # keeps calling anyway is stopped by the recursion limit.
        steps = graph.stream(
            {"messages": prompt[1:]}, {"recursion_limit": 4 * limit + 10}, stream_mode=["messages", "updates"]
        )
        stream = _stop_runaway(steps, self.id, limit)
        for mode, data in stream:
            if mode == "messages":
                chunk, meta = data
                if isinstance(chunk, AIMessageChunk) and meta.get("langgraph_node") == "model" and _chunk_text(chunk):
                    yield TextDelta(_chunk_text(chunk))
                continue
            for update in data.values():
                for message in (update or {}).get("messages", []):
                    if isinstance(message, AIMessage):
                        if any(call["name"] in self.needs_confirmation for call in message.tool_calls):
                            # Stop before the tools node runs: nothing in this step executes until the
                            # user decides, on the next turn (see _resolve_pending).
                            stream.close()
                            for key in usage:
                                usage[key] += (message.usage_metadata or {}).get(key, 0)
                            yield from _confirmation_events(message, self.needs_confirmation)
                            outcome["usage"] = usage
                            outcome["finish_reason"] = "confirmation_required"
                            return
                        for call in message.tool_calls:
                            names[call["id"]] = call["name"]
                            yield ToolCall(call["id"], call["name"], dict(call["args"]))
                        for key in usage:
                            usage[key] += (message.usage_metadata or {}).get(key, 0)
                        outcome["finish_reason"] = message.response_metadata.get("finish_reason") or "stop"
                    elif isinstance(message, ToolMessage):
                        name = message.name or names.get(message.tool_call_id, "tool")
                        yield ToolResult(message.tool_call_id, name, _clip(message.text), message.status == "error")
        outcome["usage"] = usage
        if outcome["finish_reason"] == "tool_calls":
            outcome["finish_reason"] = "stop"

    def chat(self, messages: MessagesLike, **options: Any) -> Reply:
        """Answer the conversation and return the whole reply."""
        for event in self.stream(messages, **options):
            if isinstance(event, Done):
                return Reply(event.text, event.finish_reason, event.usage)
        raise ModelError(f"{self.id}: the answer ended without finishing")  # pragma: no cover


def compile_agent(
    loaded: LoadedSpec,
    *,
    model: BaseChatModel | None = None,
    data_dir: str | Path | None = None,
    embedder: Any | None = None,
) -> Agent:
    """Build the agent for a spec: its model (through the provider registry unless given) and its knowledge.

    The knowledge index lives under ``data_dir`` (default: the configured data folder) and is built
    on first use; ``embedder`` overrides the spec's embedding model (tests pass the fake one).
    """
    from .models.registry import create_model

    tools: list[Any] = []
    if loaded.spec.tools:
        from .tools.compile import build_tools

        tools = build_tools(loaded)
    knowledge = None
    if loaded.spec.knowledge is not None:
        from .knowledge.index import KnowledgeIndex
        from .knowledge.retriever import KnowledgeBase
        from .settings import Settings

        folder = Path(data_dir) if data_dir is not None else Settings.from_env().data_dir
        index = KnowledgeIndex(loaded.id, loaded.spec.knowledge, loaded.folder, folder, embedder=embedder)
        knowledge = KnowledgeBase(index, loaded.spec.knowledge)
    curated = None
    if loaded.spec.curated_answers:
        from .curated import curated_answers_for

        curated = curated_answers_for(loaded, knowledge.index.embedder if knowledge else embedder)
    if model is None:
        model = create_model(loaded.spec.model, base_dir=loaded.folder)
    return Agent(loaded, model, knowledge=knowledge, tools=tools, curated=curated)


def _version() -> str:
    from . import __version__

    return __version__


def _to_messages(messages: MessagesLike) -> list[BaseMessage]:
    if isinstance(messages, str):
        messages = [HumanMessage(messages)]
    if len(messages) > MAX_MESSAGES:
        raise InputError(f"{len(messages):,} messages sent; at most {MAX_MESSAGES:,} are accepted")
    try:
        converted = convert_to_messages(list(messages))
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise InputError(f"unreadable messages: {exc}") from None
    if not converted or not _ends_with_question(converted):
        raise InputError("the conversation must end with a user message (or the results of the tool calls before it)")
    for message in converted:
        size = len(message.text)
        if size > MAX_MESSAGE_CHARS:
            raise InputError(
                f"a message is {size:,} characters; at most {MAX_MESSAGE_CHARS:,} are accepted — shorten it"
            )
    if isinstance(converted[-1], HumanMessage) and not converted[-1].text.strip():
        raise InputError("the message is empty; type a question or request")
    return converted


def _ends_with_question(messages: list[BaseMessage]) -> bool:
    """A user message last, or tool results answering the last assistant message's calls after one."""
    if isinstance(messages[-1], HumanMessage):
        return True
    tail = len(messages)
    while tail and isinstance(messages[tail - 1], ToolMessage):
        tail -= 1
    if tail == len(messages) or not tail or not isinstance(messages[tail - 1], AIMessage):
        return False
    asked = {call["id"] for call in messages[tail - 1].tool_calls}
    answered = {m.tool_call_id for m in messages[tail:]}
    return bool(asked) and asked == answered and any(isinstance(m, HumanMessage) for m in messages[:tail])


def _citation_filter(retrieval: Retrieval | None) -> Any:
    if retrieval is None or not retrieval.sources:
        return None
    from .knowledge.retriever import CitationFilter

    return CitationFilter({s.number for s in retrieval.sources})


def _stop_runaway(steps: Iterator[Any], gpt_id: str, limit: int) -> Iterator[Any]:
    from langgraph.errors import GraphRecursionError

    try:
        yield from steps
    except GraphRecursionError:
        raise ModelError(
            f"{gpt_id}: the model kept calling tools after the limit of {limit} (max_tool_calls) without answering"
        ) from None


def _invoke_tool(tool: BaseTool | None, call: dict[str, Any]) -> ToolMessage:
    """Run one tool call as the agent's tools node would: failures become an error message for the model."""
    name = call["name"]
    if tool is None:
        return ToolMessage(f"{name} was not run: there is no such tool.", tool_call_id=call["id"], name=name, status="error")
    try:
        result = tool.invoke({**call, "type": "tool_call"})
    except Exception as exc:  # a tool's own failure goes back to the model, never to the user
        return ToolMessage(f"{name} failed: {exc}", tool_call_id=call["id"], name=name, status="error")
    if isinstance(result, ToolMessage):
        return result
    return ToolMessage(str(result), tool_call_id=call["id"], name=name)  # pragma: no cover


def _confirmation_events(message: AIMessage, needs_confirmation: frozenset[str]) -> Iterator[Event]:
    """A paused step: what waits for approval, what is held with it, and a question for the user."""
    asks: list[str] = []
    for call in message.tool_calls:
        if call["name"] in needs_confirmation:
            yield ConfirmationRequest(call["id"], call["name"], dict(call["args"]))
            shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in call["args"].items())
            asks.append(f"{call['name']}({shown})")
        else:
            yield ToolCall(call["id"], call["name"], dict(call["args"]))  # held: runs with the decision
    separator = "\n\n" if _chunk_text(message).strip() else ""
    verb = "needs" if len(asks) == 1 else "need"
    yield TextDelta(f"{separator}{' and '.join(asks)} {verb} your approval: approve or deny it.")


def _clip(text: str, limit: int = 2000) -> str:
    """Tool output as shown in events: the model got the full (budgeted) text, people get a glimpse."""
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit:,} more characters]"


def _chunk_text(chunk: BaseMessage) -> str:
    content = chunk.content
    return content if isinstance(content, str) else chunk.text


def _finish_reason(reason: str) -> str:
    return {"eos": "stop", "end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop"}.get(reason, reason)
