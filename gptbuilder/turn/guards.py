"""Guards: checks on what comes in before the model runs, and on what goes out before the user sees it.

An input guard is asked about the turn and may block it with a reply; an output guard is an
`OutputStage` made per turn and placed before the citations, so it sees (and may hold back) the text
first, and may halt the answer. Instruction protection is here; moderation and the faithfulness
check plug in the same way.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Sequence
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


ECHO_MIN_CHARS = 30
ECHO_REPLY = "I can't share that: it would repeat my instructions or private material."
_NOT_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Text as echoes are compared: lower case, every run of non-word characters one space."""
    return _NOT_WORD.sub(" ", text.lower())


def shingles(text: str, size: int = ECHO_MIN_CHARS) -> frozenset[str]:
    """Every run of ``size`` normalised characters in the text."""
    flat = normalise(text)
    return frozenset(flat[i : i + size] for i in range(len(flat) - size + 1))


class ProtectEcho:
    """Output guard factory: for each turn, an EchoGuard over the instructions and the private passages it saw."""

    def __init__(self, protected: str, *, private_knowledge: bool, size: int = ECHO_MIN_CHARS):
        self.size = size
        self.private_knowledge = private_knowledge
        self.protected = shingles(protected, size)  # computed once: the instructions do not change per turn

    def __call__(self, turn: Turn) -> EchoGuard:
        protected = self.protected
        if self.private_knowledge and turn.retrieval is not None:
            passages = "\n".join(source.text for source in turn.retrieval.sources)
            protected = protected | shingles(passages, self.size)
        return EchoGuard(protected, self.size)


class EchoGuard:
    """Output stage: stops an answer the moment it repeats ``size`` normalised characters of protected text.

    Text is released only once every window it could be part of has been checked, so the last
    ``size - 1`` normalised characters stay held back until more arrive (a few tokens' delay); an echo
    split across stream chunks is caught before any of it is shown.
    """

    def __init__(self, protected: frozenset[str], size: int = ECHO_MIN_CHARS):
        self.protected = protected
        self.size = size
        self.halted: str | None = None
        self._flat = ""  # normalised text of everything fed so far
        self._checked = 0  # windows ending before this index have been checked
        self._shown = False  # whether any text has been let out
        self._held: list[tuple[str, int]] = []  # raw characters not yet shown, with the normalised length after each

    def feed(self, event: Event) -> Iterable[Event]:
        """Pass other events on; hold text until it is clear of every echo."""
        if self.halted or not isinstance(event, TextDelta):
            return () if self.halted else (event,)
        for char in event.text:
            self._flat = _extend(self._flat, char)
            self._held.append((char, len(self._flat)))
        echo = self._echo_start()
        if echo is not None:  # what came before the echo is clean: show it, then the refusal
            self.halted = "content_filter"
            clean = self._release(echo).rstrip()
            self._held.clear()
            reply = ("\n\n" if self._shown else "") + ECHO_REPLY
            return (TextDelta(clean + reply),)
        shown = self._release(len(self._flat) - (self.size - 1))
        return (TextDelta(shown),) if shown else ()

    def finish(self) -> Iterable[Event]:
        """The end of a clean answer: whatever was still held."""
        held, self._held = "".join(c for c, _ in self._held), []
        return (TextDelta(held),) if held and not self.halted else ()

    def _release(self, upto: int) -> str:
        """Let out the held characters whose normalised text ends at or before ``upto``."""
        cut = 0
        while cut < len(self._held) and self._held[cut][1] <= upto:
            cut += 1
        shown, self._held = "".join(c for c, _ in self._held[:cut]), self._held[cut:]
        self._shown = self._shown or bool(shown.strip())
        return shown

    def _echo_start(self) -> int | None:
        """Where the first protected run of text starts in the normalised answer, among windows not yet checked."""
        flat, size = self._flat, self.size
        start = max(self._checked, size)
        self._checked = len(flat) + 1
        return next((end - size for end in range(start, len(flat) + 1) if flat[end - size : end] in self.protected), None)


def _extend(flat: str, char: str) -> str:
    """Append one raw character to normalised text (runs of non-word characters become one space)."""
    piece = normalise(char)
    if piece == " " and flat.endswith(" "):
        return flat
    return flat + piece
