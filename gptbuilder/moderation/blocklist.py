"""The blocklist check: listed words and phrases, in any case, as whole words."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .base import Finds, Verdict

# Scripts written without spaces between words: a phrase in them is found anywhere, not only between spaces.
_UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _bounded(phrase: str) -> str:
    """The phrase as a pattern: any run of white space between its words, whole words at its ends."""
    body = r"\s+".join(map(re.escape, phrase.split()))
    before = r"(?<!\w)" if re.match(r"\w", phrase) and not _UNSPACED.match(phrase) else ""
    after = r"(?!\w)" if re.search(r"\w$", phrase) and not _UNSPACED.search(phrase[-1]) else ""
    return f"{before}{body}{after}"


class Blocklist(Finds):
    """Finds listed words and phrases: case-insensitive, at word boundaries ("ass" is not in "class")."""

    name = "blocklist"

    def __init__(self, phrases: Iterable[str]):
        unique = {" ".join(p.split()).lower(): " ".join(p.split()) for p in phrases if p.strip()}
        ordered = sorted(unique.values(), key=len, reverse=True)  # the longest phrase wins where several start together
        self.phrases = tuple(ordered)
        self.longest = max(map(len, ordered), default=0)
        self._pattern = re.compile("|".join(map(_bounded, ordered)), re.IGNORECASE) if ordered else None

    def findings(self, text: str) -> list[Verdict]:
        """Every listed phrase in the text, in order."""
        if self._pattern is None:
            return []
        return [Verdict(self.name, "blocklist", m.start(), m.end()) for m in self._pattern.finditer(text)]
