"""Split a file's Sections into Chunks with langchain-text-splitters, keeping where each came from."""

from __future__ import annotations

import bisect
import itertools
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import GPTBuilderError
from .loaders import Section

Splitter = Literal["auto", "markdown", "recursive"]
SPLITTERS: tuple[str, ...] = typing.get_args(Splitter)
INSTALL_HINT = "pip install langchain-text-splitters"


@dataclass(frozen=True)
class Chunk:
    """A piece of a file's text small enough to embed, with its locator in the file."""

    text: str
    index: int
    page: int | None = None
    headings: tuple[str, ...] = ()
    start: int | None = None
    end: int | None = None
    record: int | None = None

    def locator(self) -> dict[str, object]:
        """The known parts of where this chunk lies, JSON-ready (absent fields are omitted)."""
        found: dict[str, object] = {}
        if self.page is not None:
            found["page"] = self.page
        if self.headings:
            found["headings"] = list(self.headings)
        if self.start is not None and self.end is not None:
            found["start"], found["end"] = self.start, self.end
        if self.record is not None:
            found["record"] = self.record
        return found


@dataclass(frozen=True)
class _Unit:
    """Text handed to one splitter call, and how to map an offset in it back to its Section."""

    text: str
    sections: tuple[Section, ...]
    offsets: tuple[int, ...]  # where each section begins in text
    base: int | None  # offset of text[0] in the file's extracted text, when known


def split_sections(
    sections: Sequence[Section],
    *,
    chunk_size: int,
    chunk_overlap: int,
    splitter: Splitter = "auto",
) -> list[Chunk]:
    """Split one file's Sections into Chunks numbered across the file; no chunk is blank."""
    if chunk_size < 1 or not 0 <= chunk_overlap < chunk_size:
        raise ValueError(f"need chunk_size >= 1 and 0 <= chunk_overlap < chunk_size, got {chunk_size}, {chunk_overlap}")
    if splitter not in SPLITTERS:
        raise ValueError(f"splitter must be one of {', '.join(SPLITTERS)}, not {splitter!r}")
    splitters = _Splitters(chunk_size, chunk_overlap)
    units = _merge_structure(sections) if splitter == "recursive" else [_single(s) for s in sections if s.text.strip()]
    chunks: list[Chunk] = []
    for unit in units:
        markdown = splitter == "markdown" or (splitter == "auto" and unit.sections[0].kind == "markdown")
        for document in splitters.get(markdown).create_documents([unit.text]):
            text = document.page_content
            if not text.strip():
                continue
            offset = document.metadata.get("start_index", -1)
            section = unit.sections[max(bisect.bisect_right(unit.offsets, offset) - 1, 0)]
            start = unit.base + offset if unit.base is not None and offset >= 0 else None
            end = start + len(text) if start is not None else None
            chunks.append(Chunk(text, len(chunks), section.page, section.headings, start, end, section.record))
    return chunks


def _single(section: Section) -> _Unit:
    return _Unit(section.text, (section,), (0,), section.start)


def _merge_structure(sections: Sequence[Section]) -> list[_Unit]:
    """Join runs of heading sections so plain splitting ignores headings; pages and records stay units."""
    units: list[_Unit] = []
    run: list[Section] = []
    for section in sections:
        if not section.text.strip():
            continue
        if section.page is None and section.record is None:
            run.append(section)
            continue
        if run:
            units.append(_join(run))
            run = []
        units.append(_single(section))
    if run:
        units.append(_join(run))
    return units


def _join(run: list[Section]) -> _Unit:
    contiguous = all(
        a.start is not None and b.start is not None and a.start + len(a.text) == b.start
        for a, b in itertools.pairwise(run)
    )
    # Contiguous sections rebuild the file's text exactly, so spans stay exact; others get a blank line.
    separator = "" if contiguous else "\n\n"
    offsets, position = [], 0
    for section in run:
        offsets.append(position)
        position += len(section.text) + len(separator)
    base = run[0].start if contiguous else None
    return _Unit(separator.join(s.text for s in run), tuple(run), tuple(offsets), base)


class _Splitters:
    """The two langchain splitters for one size and overlap, built on first use."""

    def __init__(self, chunk_size: int, chunk_overlap: int):
        self.options: dict[str, Any] = {"chunk_size": chunk_size, "chunk_overlap": chunk_overlap, "add_start_index": True}
        self.built: dict[bool, Any] = {}

    def get(self, markdown: bool) -> Any:
        if markdown not in self.built:
            try:
                from langchain_text_splitters import Language, RecursiveCharacterTextSplitter
            except ImportError as exc:
                raise GPTBuilderError(f"knowledge files need langchain-text-splitters: `{INSTALL_HINT}`") from exc
            if markdown:
                made = RecursiveCharacterTextSplitter.from_language(Language.MARKDOWN, **self.options)
            else:
                made = RecursiveCharacterTextSplitter(**self.options)
            self.built[markdown] = made
        return self.built[markdown]
