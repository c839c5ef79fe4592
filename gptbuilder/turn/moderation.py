"""Moderation in the turn: an input stage that refuses a message before anything answers it, and an output
stage that checks the answer on a sliding window as it streams.

The output stage holds back only as many characters as the longest finding needs (the longest blocklisted
phrase, pattern or piece of personal data, and one more to see where a word ends) and releases the rest, so
the answer still streams. A blocked answer stops there with the refusal: the offending text is never
shown. With `pii: mask`, personal data is replaced (`[email]`) inside the window before it is released.

A remote endpoint (`moderation.remote`) judges what the local checks let through, masked already: the
user's latest message once, and the answer in pieces of `every` characters (each sent with the piece before
it, for context) plus one call for the rest at its end, so an answer of n characters costs at most
n / every + 1 calls. Each piece is held until the endpoint has passed it: with a remote check, the answer
streams in steps of `every` characters instead of a few characters at a time.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from ..events import Done, Event, Moderated, TextDelta, Usage
from ..moderation.base import Side, Verdict
from ..moderation.pii import replace
from ..moderation.policy import Moderation
from .base import Turn


def _blocked(side: Side, verdict: Verdict) -> Moderated:
    return Moderated(side, verdict.check, verdict.category, "blocked")


class ModerateInput:
    """Stage: a latest user message a blocking check flags is answered with the refusal (finish: content_filter),
    reaching neither curated answers, retrieval nor the model; with `pii: mask`, users' messages are masked first."""

    def __init__(self, moderation: Moderation):
        self.moderation = moderation

    def __call__(self, turn: Turn) -> Generator[Event, None, Done | None]:
        latest = next((m for m in reversed(turn.history) if isinstance(m, HumanMessage)), None)
        if latest is None:
            return None
        verdict = self.moderation.blocked(latest.text)
        masked: dict[str, Verdict] = {}
        if verdict is None:
            turn.history = [self._masked(m, masked) if isinstance(m, HumanMessage) else m for m in turn.history]
            if self.moderation.remote is not None:  # sent masked: the endpoint is a third party
                latest = next(m for m in reversed(turn.history) if isinstance(m, HumanMessage))
                verdict = self.moderation.remote.check(latest.text)
        if verdict is not None:
            refusal = self.moderation.refusal
            yield _blocked("input", verdict)
            yield TextDelta(refusal)
            return Done(refusal, finish_reason="content_filter", usage=Usage())
        for verdict in masked.values():
            yield Moderated("input", verdict.check, verdict.category, "masked")
        return None

    def _masked(self, message: BaseMessage, found: dict[str, Verdict]) -> BaseMessage:
        """The message with its text (each text part of a multi-part one) masked; what was masked goes in ``found``."""

        def mask(text: str) -> str:
            masked, findings = self.moderation.masked(text)
            found.update((f.category, f) for f in findings)
            return masked

        content: Any = message.content
        if isinstance(content, str):
            new: Any = mask(content)
        else:
            new = [
                {**part, "text": mask(part["text"])} if isinstance(part, dict) and isinstance(part.get("text"), str) else part
                for part in content
            ]
        return message if new == content else message.model_copy(update={"content": new})


class ModerateOutput:
    """Output guard factory: a ModerationGuard for each turn."""

    def __init__(self, moderation: Moderation):
        self.moderation = moderation

    def __call__(self, turn: Turn) -> ModerationGuard:
        return ModerationGuard(self.moderation)


class ModerationGuard:
    """Output stage: releases the answer once each piece is clear of every check; stops it at the first block."""

    def __init__(self, moderation: Moderation):
        self.moderation = moderation
        self.hold = moderation.holdback
        self.halted: str | None = None
        self._context = ""  # the last characters already released: what a finding at the window's start may need
        self._held = ""  # text not yet released
        self._shown = False
        self._masked: set[str] = set()  # categories already reported as masked this turn
        self._unjudged = ""  # with a remote check: text the local checks released that the endpoint has not passed
        self._judged = ""  # the last piece it passed: sent with the next one, for context

    def feed(self, event: Event) -> Iterable[Event]:
        """Other events pass; text comes out once checked, masked where it must be."""
        if self.halted:
            return ()
        if not isinstance(event, TextDelta):
            return (event,)
        self._held += event.text
        return self._judge(self._drain(final=False), final=False)

    def finish(self) -> Iterable[Event]:
        """The end of the answer: what is still held, checked to its last character."""
        if self.halted:
            return ()
        return self._judge(self._drain(final=True) if self._held else [], final=True)

    def _judge(self, events: list[Event], *, final: bool) -> list[Event]:
        """Without a remote check, the events as they are; with one, text held until the endpoint passes it."""
        remote = self.moderation.remote
        if remote is None or self.halted:
            return events
        out: list[Event] = []
        for event in events:
            if isinstance(event, TextDelta):
                self._unjudged += event.text
            else:
                out.append(event)
        if self._unjudged and (final or len(self._unjudged) >= self.moderation.remote_every):
            piece, self._unjudged = self._unjudged, ""
            verdict = remote.check(self._judged + piece)
            if verdict is not None:
                self.halted = "content_filter"
                refusal = ("\n\n" if self._shown else "") + self.moderation.refusal
                return [*out, _blocked("output", verdict), TextDelta(refusal)]
            self._judged = piece[-self.moderation.remote_every :]
            self._shown = self._shown or bool(piece.strip())
            out.append(TextDelta(piece))
        return out

    def _drain(self, *, final: bool) -> list[Event]:
        text, offset = self._context + self._held, len(self._context)
        # A finding that reaches the end may still grow, or lose the word boundary it ends on: decide it later.
        settled = len(text) if final else len(text) - 1
        block = next((f for f in self.moderation.blocking_findings(text) if f.end > offset and f.end <= settled), None)
        if block is not None:
            self.halted = "content_filter"
            self._held = ""
            refusal = ("\n\n" if self._shown else "") + self.moderation.refusal
            return [_blocked("output", block), TextDelta(refusal)]
        cut = len(text) if final else max(offset, len(text) - self.hold)
        masks = []
        for found in self.moderation.masking.findings(text) if self.moderation.masking else ():
            if found.end <= offset:
                continue
            if found.end > settled or found.start >= cut:
                cut = min(cut, max(found.start, offset))  # not settled (or not yet due): keep it whole for later
                continue
            masks.append(Verdict(found.check, found.category, max(found.start, offset), found.end))
            cut = max(cut, found.end)  # settled: release it whole, masked
        masks = [m for m in masks if m.end <= cut]
        released = replace(text[offset:cut], [Verdict(m.check, m.category, m.start - offset, m.end - offset) for m in masks])
        self._context, self._held = text[:cut][-self.hold :], text[cut:]
        events: list[Event] = []
        for found in masks:
            if found.category not in self._masked:
                self._masked.add(found.category)
                events.append(Moderated("output", found.check, found.category, "masked"))
        if released:
            self._shown = self._shown or (bool(released.strip()) and self.moderation.remote is None)
            events.append(TextDelta(released))
        return events
