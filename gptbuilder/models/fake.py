"""`provider: fake` — a deterministic model for tests and demos; loads nothing, needs nothing."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGenerationChunk
from pydantic import Field, PrivateAttr

from ..errors import ModelError
from .base import DEFAULT_CONTEXT_WINDOW, DEFAULT_MAX_TOKENS, StreamingChatModel, final_chunk
from .options import expect, number, option_problems
from .registry import Provider

if TYPE_CHECKING:
    from ..spec import ModelConfig

_OPTIONS = {
    "replies": expect(
        lambda value: isinstance(value, str) or (isinstance(value, list) and all(isinstance(r, str) for r in value)),
        "a text or a list of texts",
    ),
    "fail_after": number(0, whole=True),
    "delay": number(0, 10),
}
FAKE_VOCABULARY = 50_000  # token ids a `logit_bias` may name for the fake model
# The sampling options a call may carry (as call arguments, or as fields on a copy, the way the tool loop passes them).
RECORDED = (
    "temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias",
    "logprobs", "top_logprobs", "tool_choice", "response_format", "top_k", "min_p", "repeat_penalty",
)


class FakeChatModel(StreamingChatModel):
    """Replies with the given texts in turn, or echoes the last user message; streams word by word.

    With tools bound, a reply that is JSON such as {"type": "tool_call", "name": ..., "arguments": {...}}
    becomes a tool call, so tests can script a whole tool loop.

    `fail_after=N` raises ModelError after N streamed pieces, to exercise error paths; `delay` waits that many
    seconds before each piece, so a test can act while an answer streams (disconnect, kill the server).

    Sampling options are accepted and kept in `calls` (one dict per call, options given only), so tests
    can check that a request's options reach the model; with `logprobs`, each word gets a made-up one.
    """

    replies: list[str] = Field(default_factory=list)
    max_tokens: int = DEFAULT_MAX_TOKENS
    fail_after: int | None = None
    delay: float = 0.0
    context_window: int = DEFAULT_CONTEXT_WINDOW
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[int, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    response_format: dict[str, Any] | None = None  # recorded only: scripted replies are what a test makes them
    _turn: Iterator[int] = PrivateAttr(default_factory=itertools.count)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: list[dict[str, Any]] = PrivateAttr(default_factory=list)  # shared with copies (model_copy is shallow)

    @property
    def calls(self) -> list[dict[str, Any]]:
        """The options of every call so far, in order (each call's arguments over the model's fields)."""
        return self._calls

    @property
    def _llm_type(self) -> str:
        return "gptbuilder-fake"

    def count_message_tokens(self, messages: list[BaseMessage]) -> int:
        """One token per word, plus a little per message: deterministic and cheap."""
        return sum(len(m.text.split()) + 3 for m in messages)

    def count_text_tokens(self, text: str) -> int:
        """One token per word."""
        return len(text.split())

    def vocabulary_size(self) -> int:
        """A vocabulary size for `logit_bias` checks (the fake has no real tokens)."""
        return FAKE_VOCABULARY

    def _reply(self, messages: list[BaseMessage]) -> str:
        if self.replies:
            with self._lock:
                turn = next(self._turn)
            return self.replies[turn % len(self.replies)]
        last = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        return f"You said: {last.text}" if last is not None else "Hello!"

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        options = {name: kwargs.get(name, getattr(self, name, None)) for name in RECORDED} | ({"stop": stop} if stop else {})
        self._calls.append({name: value for name, value in options.items() if value is not None})
        reply = self._reply(messages)
        if kwargs.get("tools") and reply.lstrip().startswith("{"):
            from .tool_calling import parse_reply, reply_chunk

            yield reply_chunk(parse_reply(reply))  # scripted tool calls use the local models' JSON protocol
            yield final_chunk(self.count_message_tokens(messages), 1, "tool_calls", "fake")
            return
        pieces = re.findall(r"\s*\S+", reply)
        limit = kwargs.get("max_tokens") or self.max_tokens
        finish_reason = "length" if len(pieces) > limit else "stop"
        pieces = pieces[:limit]
        for index, piece in enumerate(pieces):
            if self.fail_after is not None and index >= self.fail_after:
                raise ModelError("the fake model failed on purpose (fail_after)")
            if self.delay:
                time.sleep(self.delay)
            if run_manager:
                run_manager.on_llm_new_token(piece)
            metadata = {"logprobs": {"content": [_logprob(piece, options["top_logprobs"] or 0)]}} if options["logprobs"] else {}
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece, response_metadata=metadata))
        yield final_chunk(self.count_message_tokens(messages), len(pieces), finish_reason, "fake")


def _logprob(piece: str, top: int) -> dict[str, Any]:
    """A made-up log probability for one word: -0.5, with alternatives "<1>", "<2>"… each one less likely."""

    def token(text: str, logprob: float) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    alternatives = [token(f"<{rank}>", -0.5 - rank) for rank in range(1, top)]
    return {**token(piece, -0.5), "top_logprobs": [token(piece, -0.5), *alternatives] if top else []}


class FakeProvider(Provider):
    """Builds FakeChatModel from `model.options` (`replies`, `fail_after`, `delay`)."""

    name = "fake"

    def create(self, config: ModelConfig, *, base_dir: Path) -> FakeChatModel:
        """A fresh fake model for this spec."""
        self.ensure_valid(config, base_dir=base_dir)
        replies = config.options.get("replies") or []
        return FakeChatModel(
            replies=[replies] if isinstance(replies, str) else list(replies),
            max_tokens=config.max_tokens or DEFAULT_MAX_TOKENS,
            fail_after=config.options.get("fail_after"),
            delay=float(config.options.get("delay") or 0.0),
            context_window=config.context_window or DEFAULT_CONTEXT_WINDOW,
        )

    def check(self, config: ModelConfig, *, base_dir: Path) -> list[tuple[str, str]]:
        """Options must be known; replies must be text."""
        return option_problems(config.options, _OPTIONS, self.name)


provider = FakeProvider()
