"""Sentences of the retrieved passages, ranked against a question: what an extractive answer says, and what a
verified answer quotes in place of a sentence the sources do not support."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .retriever import Source
from .tokenize import cjk_terms

Embed = Callable[[Sequence[str]], list[list[float]]]

_STOP_WORDS = (
    "a an the is are was were be been to of in on for and or with at by from it its this that these those what "
    "which who whom how when where why do does did can could will would should i you your my our we us me he she "
    "they them their there here as if so not no yes any some all about into than then also just only very long much many "
    "take takes get gets go goes need make have has"
)
_STOP = frozenset(_STOP_WORDS.split())
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？；])\s*|\n+")  # Chinese puts no space after 。
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*)$")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]+")


@dataclass(frozen=True)
class SourceSentence:
    """One sentence (or table row, or list item) of a numbered source, with the heading it sits under."""

    number: int
    text: str
    heading: str = ""

    def cited(self) -> str:
        """The sentence as an answer quotes it, with its source marker."""
        return f"{self.text} [{self.number}]"


def words(text: str) -> set[str]:
    """Content words for overlap scoring (CJK text as character bigrams, as search indexes it)."""
    lowered = text.lower()
    found = {w for w in re.findall(r"[^\W_]+", _CJK.sub(" ", lowered)) if w not in _STOP}
    return found.union(*(cjk_terms(run) for run in _CJK.findall(lowered)))


def stems(text: str) -> set[str]:
    """Content words cut to a rough stem ("refunds", "refunded" → "refund"), for asking whether two texts are about the same thing."""
    return {re.sub(r"(?:ing|ed|es|s)$", "", w) if len(w) > 4 else w for w in words(text)}


def source_sentences(sources: Iterable[Source]) -> list[SourceSentence]:
    """Every sentence, list item and table row of the sources, in order (tables as "Header: cell, …").

    Lines of one paragraph are joined first: Markdown wraps sentences across lines.
    """
    found: list[SourceSentence] = []
    for source in sources:
        heading: str = ""
        header_cells: list[str] | None = None
        paragraph: list[str] = []

        def flush(number: int = source.number) -> None:
            found.extend(_sentences(number, " ".join(paragraph), heading))  # noqa: B023 - runs inside this iteration
            paragraph.clear()  # noqa: B023

        for line in source.text.splitlines():
            if match := _HEADING.match(line):
                flush()
                heading, header_cells = match.group(1).strip(), None
            elif line.strip().startswith("|"):
                flush()
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if _TABLE_RULE.match(line):
                    continue
                if header_cells is None:
                    header_cells = cells
                    continue
                row = ", ".join(f"{h}: {c}" if h else c for h, c in zip(header_cells, cells, strict=False) if c)
                found.append(SourceSentence(source.number, row, heading))
            elif not line.strip() or _BULLET.match(line):
                flush()
                header_cells = None
                if line.strip():
                    paragraph.append(_BULLET.sub("", line).strip())
            else:
                paragraph.append(line.strip())
        flush()
    return found


def _sentences(number: int, text: str, heading: str) -> list[SourceSentence]:
    return [SourceSentence(number, s.strip(), heading) for s in _SENTENCE_END.split(text) if len(s.strip()) > 2]


def rank(query: str, candidates: Sequence[SourceSentence], *, embed: Embed | None = None) -> list[tuple[float, SourceSentence]]:
    """The candidates best first: shared content words (with their heading's), plus embedding similarity."""
    if not candidates:
        return []
    asked = stems(query)
    # A word of the question in the sentence's heading counts again: the heading says what the sentence is about.
    lexical = [
        (len(asked & stems(c.text)) + len(asked & stems(c.heading))) / math.sqrt(len(words(c.text)) + 1) for c in candidates
    ]
    top = max(lexical) or 1.0
    scores = [x / top for x in lexical]
    if embed is not None:
        vectors = embed([query, *(f"{c.heading}: {c.text}" if c.heading else c.text for c in candidates)])
        q = vectors[0]
        scores = [s * 0.5 + _cosine(q, v) for s, v in zip(scores, vectors[1:], strict=True)]
    return sorted(zip(scores, candidates, strict=True), key=lambda pair: -pair[0])


def extract(query: str, sources: Sequence[Source], *, embed: Embed | None = None, most: int = 2) -> list[SourceSentence]:
    """The one to ``most`` sentences that answer ``query`` best, in the order the sources give them."""
    everything = source_sentences(sources)
    ranked = rank(query, everything, embed=embed)
    if not ranked:
        return []
    best = ranked[0][0]
    chosen = {id(c) for score, c in ranked[:most] if score >= best * 0.85}
    return [c for c in everything if id(c) in chosen]


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
