"""What a turn's stages share: the turn itself, the stage contracts, and how a run ends."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from ..errors import GPTBuilderError, ModelError
from ..events import Done, Event, TextDelta, Usage
from ..pending import MemoryPendingCalls, PendingCalls

if TYPE_CHECKING:
    from ..knowledge.retriever import Retrieval

T = TypeVar("T")

# Backends name the same endings differently; the rest of gptbuilder sees only OpenAI's names.
_FINISH_REASONS = {"eos": "stop", "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


@dataclass(frozen=True)
class Options:
    """Sampling settings the caller sent for this turn; None (or empty) leaves the GPT's own."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: Mapping[int, float] | None = None  # token id -> added to its logit (-100 bans it, 100 forces it)
    top_k: int | None = None  # vLLM's and llama.cpp's sampling extensions (applied by local models)
    min_p: float | None = None
    repeat_penalty: float | None = None
    logprobs: bool = False  # report each answer token's log probability (see events.TokenLogprobs)
    top_logprobs: int | None = None  # and this many most likely alternatives at each position
    # OpenAI's response_format ({"type": "json_object"} or "json_schema" with its schema): the answer is that JSON.
    response_format: Mapping[str, Any] | None = None

    @property
    def structured(self) -> bool:
        """Whether the answer is a JSON document (json_object or json_schema), not prose."""
        return bool(self.response_format) and (self.response_format or {}).get("type") != "text"

    def model_kwargs(self) -> dict[str, Any]:
        """The settings that were given, as chat-model call arguments."""
        given = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop) or None,
            "seed": self.seed,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "logit_bias": dict(self.logit_bias) if self.logit_bias else None,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
            "logprobs": self.logprobs or None,
            "top_logprobs": self.top_logprobs if self.logprobs else None,
            "response_format": dict(self.response_format) if self.response_format and self.structured else None,
        }
        return {key: value for key, value in given.items() if value is not None}


@dataclass
class Turn:
    """One answer in the making: the request and what the stages before the model found for it."""

    gpt_id: str
    history: list[BaseMessage]
    options: Options = field(default_factory=Options)
    approvals: Mapping[str, bool] = field(default_factory=dict)
    client_tools: Sequence[dict[str, Any]] = ()
    tool_choice: Any = None
    owner: str = "local"  # who asks: an API key id, a widget session, a store conversation's owner
    pending: PendingCalls = field(default_factory=MemoryPendingCalls)  # calls paused for approval, per owner
    retrieval: Retrieval | None = None

    @property
    def request(self) -> str:
        """The text of the user's latest message."""
        return next(m.text for m in reversed(self.history) if isinstance(m, HumanMessage))


@dataclass(frozen=True)
class RunResult:
    """How the model's part of a turn ended: why it stopped (as the backend said), usage, its last message."""

    finish_reason: str = "stop"
    usage: Usage | None = None  # None: the backend reported none, so the agent estimates it
    message: AIMessage | None = None


class Stage(Protocol):
    """A step before the model: it may stream events, fill in the turn, or answer the turn itself.

    Returning a Done ends the turn with that answer (nothing after this stage runs); None goes on.
    """

    def __call__(self, turn: Turn) -> Generator[Event, None, Done | None]: ...


class Runner(Protocol):
    """The model's part of a turn: streams its events for a fitted prompt and returns how it ended."""

    def __call__(self, turn: Turn, prompt: list[BaseMessage]) -> Generator[Event, None, RunResult]: ...


class OutputStage(Protocol):
    """Sees every event after the model and before the user (output guards, citations).

    `feed` returns what may pass on now (it may hold text back, change or drop it); `finish` returns
    whatever it still holds, and anything it adds at the end. A stage that sets `halted` (a finish
    reason, e.g. "content_filter") stops the answer: the model is stopped and nothing more is fed.
    """

    halted: str | None

    def feed(self, event: Event) -> Iterable[Event]: ...

    def finish(self) -> Iterable[Event]: ...


def through(
    run: Generator[Event, None, RunResult], stages: Sequence[OutputStage]
) -> Generator[Event, None, tuple[RunResult, str]]:
    """Pass a run's events through the output stages in order; return its result and the text shown."""
    shown: list[str] = []

    def onward(events: Iterable[Event], start: int) -> Iterator[Event]:
        for event in events:
            if start < len(stages):
                yield from onward(stages[start].feed(event), start + 1)
            elif not isinstance(event, TextDelta):
                yield event
            elif event.text:
                shown.append(event.text)
                yield event

    try:
        while True:
            try:
                event = next(run)
            except StopIteration as stop:
                result = stop.value if stop.value is not None else RunResult()
                break
            yield from onward((event,), 0)
            halted = next((stage.halted for stage in stages if stage.halted), None)
            if halted:
                result = RunResult(halted)  # usage unknown once stopped: the agent counts it
                break
    finally:
        run.close()  # a caller that stops listening, or a guard that halts, stops the model too
    for index, stage in enumerate(stages):
        yield from onward(stage.finish(), index + 1)
    return result, "".join(shown)


def from_backend(items: Iterator[T], gpt_id: str) -> Generator[T, None, None]:
    """Iterate what a backend streams, translating its own exception types into ModelError here.

    Only backend calls are wrapped: an error in gptbuilder's own code stays itself, with its traceback.
    """
    try:
        yield from items
    except GPTBuilderError:
        raise
    except Exception as exc:
        raise ModelError(f"{gpt_id}: the model failed: {exc}") from exc


def normal_finish_reason(reason: str | None) -> str:
    """A backend's finish reason in OpenAI's words ("stop", "length", "tool_calls", …)."""
    return _FINISH_REASONS.get(reason or "stop", reason or "stop")
