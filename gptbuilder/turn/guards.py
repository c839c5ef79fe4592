"""Guards: checks on what comes in before the model runs, and on what goes out before the user sees it.

None are configured yet; moderation, instruction protection and the faithfulness check plug in here.
An input guard is asked about the turn and may block it with a reply; an output guard is an
`OutputStage` placed before the citations, so it sees (and may hold back) the text first.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..events import Done, Event, TextDelta, Usage
from .base import Turn


@dataclass(frozen=True)
class Verdict:
    """A guard's refusal: what the user is told, and why (for the operator)."""

    reply: str
    reason: str


class InputGuard(Protocol):
    """Checks a turn before anything answers it; a Verdict blocks it."""

    def check(self, turn: Turn) -> Verdict | None: ...


class GuardInput:
    """Stage: the first input guard that blocks the turn answers it with its reply (finish: content_filter)."""

    def __init__(self, guards: Sequence[InputGuard]):
        self.guards = list(guards)

    def __call__(self, turn: Turn) -> Generator[Event, None, Done | None]:
        for guard in self.guards:
            verdict = guard.check(turn)
            if verdict is not None:
                yield TextDelta(verdict.reply)
                return Done(verdict.reply, finish_reason="content_filter", usage=Usage())
        return None
