"""What every moderation check shares: what it found (`Verdict`) and the `Check` contract."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

Side = Literal["input", "output"]
Action = Literal["blocked", "masked"]


@dataclass(frozen=True)
class Verdict:
    """One thing a check found: which check, its category, and where it is in the text checked."""

    check: str  # blocklist | regex | pii
    category: str  # blocklist, the pattern's name, or the kind of PII (email, phone, card, iban)
    start: int = 0
    end: int = 0


class Check(Protocol):
    """A moderation check: finds what it looks for in a text."""

    name: str
    longest: int  # characters one finding may span: how much a stream is held back for it

    def check(self, text: str) -> Verdict | None: ...

    def findings(self, text: str) -> list[Verdict]: ...


class Finds:
    """Gives a check its `check` (the first finding) from its `findings` (all of them, in order)."""

    def findings(self, text: str) -> list[Verdict]:  # pragma: no cover - every check defines its own
        """Everything the check finds, in order."""
        raise NotImplementedError

    def check(self, text: str) -> Verdict | None:
        """The first thing the check finds, or None when the text is clean."""
        return next(iter(self.findings(text)), None)


def apart(findings: Iterable[Verdict]) -> list[Verdict]:
    """Findings that do not overlap, in text order: where two overlap, the one starting first (then the longer) wins."""
    kept: list[Verdict] = []
    for found in sorted(findings, key=lambda f: (f.start, f.start - f.end)):
        if not kept or found.start >= kept[-1].end:
            kept.append(found)
    return kept
