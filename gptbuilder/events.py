"""Typed events an agent streams to the CLI, the store UI and the API."""

from __future__ import annotations

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
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True)
class TextDelta(_Event):
    """A piece of the answer's text, in order."""

    type: ClassVar[str] = "text"
    text: str


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


Event = TextDelta | ToolCall | ToolResult | ConfirmationRequest | Citation | Curated | Done
