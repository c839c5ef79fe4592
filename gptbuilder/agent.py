"""Compile a loaded spec into an agent that streams typed events."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    convert_to_messages,
    trim_messages,
)

from .errors import GPTBuilderError, InputError, ModelError
from .events import Done, Event, TextDelta, Usage
from .models.registry import DEFAULT_MAX_TOKENS, context_window_of, count_tokens
from .spec import LoadedSpec

logger = logging.getLogger("gptbuilder")

MAX_MESSAGE_CHARS = 100_000
MAX_MESSAGES = 1_000

MessagesLike = str | Sequence[BaseMessage | dict[str, Any] | tuple[str, str]]


@dataclass(frozen=True)
class Reply:
    """A complete answer: what `Agent.chat` returns."""

    text: str
    finish_reason: str
    usage: Usage


class Agent:
    """One GPT ready to chat: its spec, its model and the prompt built from them."""

    def __init__(self, loaded: LoadedSpec, model: BaseChatModel, *, context_window: int | None = None):
        self.loaded = loaded
        self.model = model
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

    def system_prompt(self) -> str:
        """The system prompt: the GPT's instructions (knowledge and tools add to it later)."""
        return self.loaded.instructions

    def prepare(self, messages: MessagesLike, *, max_tokens: int | None = None) -> list[BaseMessage]:
        """Validate a conversation and fit it, with the system prompt, into the model's context."""
        history = _to_messages(messages)
        system = SystemMessage(self.system_prompt())
        answer_budget = max_tokens or self.loaded.spec.model.max_tokens or DEFAULT_MAX_TOKENS
        budget = self.context_window - answer_budget
        system_tokens = count_tokens(self.model, [system])
        if budget - system_tokens < 16:
            raise InputError(
                f"the instructions of {self.id} take {system_tokens} tokens, leaving no room in the model's "
                f"{self.context_window}-token context window for a {answer_budget}-token answer; "
                "shorten them, lower model.max_tokens or raise model.context_window"
            )
        kept = trim_messages(
            [system, *history],
            max_tokens=budget,
            token_counter=lambda msgs: count_tokens(self.model, msgs),
            strategy="last",
            include_system=True,
            start_on="human",
            allow_partial=False,
        )
        if not kept or not isinstance(kept[-1], HumanMessage) or kept[-1] is not history[-1]:
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
    ) -> Iterator[Event]:
        """Answer the conversation, yielding text deltas and then one Done event."""
        prompt = self.prepare(messages, max_tokens=max_tokens)
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
        finish_reason = "stop"
        usage: dict[str, int] | None = None
        try:
            for chunk in self.model.stream(prompt, **options):
                text = _chunk_text(chunk)
                if text:
                    parts.append(text)
                    yield TextDelta(text)
                finish_reason = chunk.response_metadata.get("finish_reason") or finish_reason
                if chunk.usage_metadata:
                    usage = dict(chunk.usage_metadata)
        except GPTBuilderError:
            raise
        except Exception as exc:  # a backend's own error type: translate at this edge
            raise ModelError(f"{self.id}: the model failed: {exc}") from exc
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

    def chat(self, messages: MessagesLike, **options: Any) -> Reply:
        """Answer the conversation and return the whole reply."""
        for event in self.stream(messages, **options):
            if isinstance(event, Done):
                return Reply(event.text, event.finish_reason, event.usage)
        raise ModelError(f"{self.id}: the answer ended without finishing")  # pragma: no cover


def compile_agent(loaded: LoadedSpec, *, model: BaseChatModel | None = None) -> Agent:
    """Build the agent for a spec, creating its model through the provider registry unless given one."""
    from .models.registry import create_model

    unsupported = loaded.unsupported_sections()
    if unsupported:
        logger.warning(
            "%s: %s validated but not used yet by gptbuilder %s", loaded.id, ", ".join(unsupported), _version()
        )
    return Agent(loaded, model if model is not None else create_model(loaded.spec.model, base_dir=loaded.folder))


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
    if not converted or not isinstance(converted[-1], HumanMessage):
        raise InputError("the conversation must end with a user message")
    for message in converted:
        size = len(message.text)
        if size > MAX_MESSAGE_CHARS:
            raise InputError(
                f"a message is {size:,} characters; at most {MAX_MESSAGE_CHARS:,} are accepted — shorten it"
            )
    if not converted[-1].text.strip():
        raise InputError("the message is empty; type a question or request")
    return converted


def _chunk_text(chunk: BaseMessage) -> str:
    content = chunk.content
    return content if isinstance(content, str) else chunk.text


def _finish_reason(reason: str) -> str:
    return {"eos": "stop", "end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop"}.get(reason, reason)
