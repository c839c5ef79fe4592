"""Typed events an agent streams to the CLI, the store UI and the API, and the one fold of them: `Transcript`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Usage:
    """Token counts of one answer."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        """OpenAI-shaped usage object."""
        return {**asdict(self), "total_tokens": self.total_tokens}


class _Event:
    """Gives each event its JSON-ready form: its fields plus its `type`."""

    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with its type."""
        return {"type": self.type, **asdict(self)}  # type: ignore[call-overload]  # every event is a dataclass


@dataclass(frozen=True)
class TextDelta(_Event):
    """A piece of the answer's text, in order."""

    type: ClassVar[str] = "text"
    text: str


@dataclass(frozen=True)
class TokenLogprobs(_Event):
    """The log probabilities of the tokens of the text that follows (when asked for), in OpenAI's `logprobs.content` shape."""

    type: ClassVar[str] = "logprobs"
    content: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Done:
    """The answer is complete: the whole text, why generation stopped, and token usage."""

    type: ClassVar[str] = "done"
    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with its type."""
        return {
            "type": self.type,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict(),
        }


@dataclass(frozen=True)
class Citation(_Event):
    """A knowledge passage given to the model for this answer; `cited` when the answer refers to it as [number]."""

    type: ClassVar[str] = "citation"
    number: int
    source: str
    text: str
    locator: dict[str, Any] = field(default_factory=dict)
    cited: bool = False


@dataclass(frozen=True)
class ToolCall(_Event):
    """The model asked to run a tool with these arguments."""

    type: ClassVar[str] = "tool_call"
    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResult(_Event):
    """What a tool returned (truncated for display); `error` when it failed and the model was told."""

    type: ClassVar[str] = "tool_result"
    id: str
    name: str
    content: str
    error: bool = False


@dataclass(frozen=True)
class ConfirmationRequest(_Event):
    """The model asked to run a tool that needs the user's approval; it runs only if the next turn approves `id`."""

    type: ClassVar[str] = "confirmation_request"
    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Curated(_Event):
    """The answer that follows is a curated one from the spec, given without the model: its question and similarity."""

    type: ClassVar[str] = "curated"
    question: str
    score: float


@dataclass(frozen=True)
class Grounding(_Event):
    """How the answer was checked against its sources (answer modes `verified` and `extractive`).

    ``claims`` checkable claims were found in ``sentences`` sentences; ``changes`` lists each sentence the
    check changed: {"sentence", "unsupported": [claims as written], "action": dropped | quoted | marked |
    replaced, "replacement"}.
    """

    type: ClassVar[str] = "grounding"
    mode: str
    sentences: int
    claims: int
    changes: tuple[dict[str, Any], ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything the model wrote was changed before it was shown."""
        return bool(self.changes)


@dataclass(frozen=True)
class Moderated(_Event):
    """Moderation acted on the turn: on which ``side`` (input, output), which ``check``, the ``category`` it found,
    and the ``action``: blocked (the user got the refusal instead) or masked (personal data replaced)."""

    type: ClassVar[str] = "moderated"
    side: str
    check: str
    category: str
    action: str = "blocked"


Event = (
    TextDelta | ToolCall | ToolResult | ConfirmationRequest | Citation | Curated | Grounding | Moderated | TokenLogprobs | Done
)

Step = ToolCall | ToolResult | ConfirmationRequest


@dataclass
class Transcript:
    """One answer's events folded once: what every edge (CLI, API, widget, store, tests) shows or keeps.

    Edges present each event as it arrives in their own way; what the answer amounts to (its text,
    sources, tool steps, what waits for approval, how it ended) is read from here.
    """

    parts: list[str] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)  # tool calls, results and confirmation requests, in order
    curated: Curated | None = None
    grounding: Grounding | None = None
    moderations: list[Moderated] = field(default_factory=list)
    done: Done | None = None

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> Transcript:
        """Fold a whole stream."""
        transcript = cls()
        for event in events:
            transcript.add(event)
        return transcript

    def add(self, event: Event) -> None:
        """Fold in one event."""
        match event:
            case TextDelta():
                self.parts.append(event.text)
            case Citation():
                self.citations.append(event)
            case ToolCall() | ToolResult() | ConfirmationRequest():
                self.steps.append(event)
            case Curated():
                self.curated = event
            case Grounding():
                self.grounding = event
            case Moderated():
                self.moderations.append(event)
            case Done():
                self.done = event

    @property
    def text(self) -> str:
        """The answer's text so far (all of it once done)."""
        return "".join(self.parts)

    @property
    def blocked_by(self) -> Moderated | None:
        """The moderation finding that blocked the turn, if one did."""
        return next((m for m in self.moderations if m.action == "blocked"), None)

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls made, in order."""
        return [step for step in self.steps if isinstance(step, ToolCall)]

    @property
    def tool_results(self) -> list[ToolResult]:
        """What the tools returned, in order."""
        return [step for step in self.steps if isinstance(step, ToolResult)]

    @property
    def confirmations(self) -> list[ConfirmationRequest]:
        """The calls that wait for the user's approval."""
        return [step for step in self.steps if isinstance(step, ConfirmationRequest)]

    @property
    def calls(self) -> list[ToolCall | ConfirmationRequest]:
        """Every call the model asked for, run or waiting for approval, in order."""
        return [step for step in self.steps if not isinstance(step, ToolResult)]

    def pending_calls(self) -> list[ToolCall | ConfirmationRequest]:
        """The calls that have no result yet (when the answer paused for approval, the ones to decide on)."""
        answered = {result.id for result in self.tool_results}
        return [call for call in self.calls if call.id not in answered]

    @property
    def finish_reason(self) -> str | None:
        """Why generation stopped; None until the answer is done."""
        return self.done.finish_reason if self.done else None

    @property
    def usage(self) -> Usage:
        """Token usage of the answer (zero until it is done)."""
        return self.done.usage if self.done else Usage()
