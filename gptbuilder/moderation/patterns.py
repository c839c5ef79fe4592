"""The regex check: named patterns, compiled once, each run with a time limit.

Patterns come from specs, and a spec saved through the store is a builder's, not the operator's: the
`regex` module (installed with langchain-openai's tiktoken) stops a pattern that backtracks without end,
and such a pattern counts as a finding, so a runaway pattern blocks rather than lets text through.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import regex

from .base import Finds, Verdict

logger = logging.getLogger("gptbuilder.moderation")

PATTERN_TIMEOUT = 0.25  # seconds one pattern may search one text
PATTERN_WINDOW = 100  # characters held back for a pattern whose matches have no fixed longest length


def compile_pattern(pattern: str) -> Any:
    """The compiled pattern; ValueError saying what is wrong with it (invalid, or matching empty text)."""
    try:
        compiled = regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)
    except regex.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    if compiled.search("", timeout=PATTERN_TIMEOUT) is not None:
        raise ValueError("the pattern matches empty text, so it would flag every message; make it match something")
    return compiled


def longest_match(pattern: str) -> int:
    """How many characters a match of the pattern can span, capped at PATTERN_WINDOW."""
    try:
        from re import _parser  # the standard library's own parser: it knows how wide a match can be

        _, most = _parser.parse(pattern, re.IGNORECASE).getwidth()
    except Exception:  # syntax only the regex module knows: assume the window
        return PATTERN_WINDOW
    return min(int(most), PATTERN_WINDOW)


class Patterns(Finds):
    """Finds text matching any of the named patterns (case-insensitive); the category is the pattern's name."""

    name = "regex"

    def __init__(self, patterns: Mapping[str, str], *, timeout: float = PATTERN_TIMEOUT):
        self.timeout = timeout
        self._compiled = {name: compile_pattern(pattern) for name, pattern in patterns.items()}
        self.longest = max((longest_match(p) for p in patterns.values()), default=0)

    def findings(self, text: str) -> list[Verdict]:
        """Every match of every pattern, in text order."""
        found: list[Verdict] = []
        for name, compiled in self._compiled.items():
            try:
                found.extend(Verdict(self.name, name, m.start(), m.end()) for m in compiled.finditer(text, timeout=self.timeout))
            except TimeoutError:
                logger.warning("moderation pattern %r ran past %.2f s on a %d-character text: counted as a match",
                               name, self.timeout, len(text))
                found.append(Verdict(self.name, name, 0, len(text)))
        return sorted(found, key=lambda f: (f.start, f.end))
