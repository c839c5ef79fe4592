"""Chunks respect size and overlap, never come out blank, and say exactly where in the file they lie."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from gptbuilder.knowledge.chunking import Chunk, split_sections
from gptbuilder.knowledge.loaders import Section, load_file

from .files import pdf_bytes, write_docx

WORDS = " ".join(f"word{i}" for i in range(400))
MARKDOWN = f"""Preface paragraph before any heading.

# Returns

{WORDS}

## Refund window

Refunds within 30 days. {WORDS}

# Shipping
Ships in 3 days.
"""


def md_file(tmp_path: Path, text: str = MARKDOWN, name: str = "notes.md") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path, text


@pytest.mark.parametrize("splitter", ["auto", "markdown", "recursive"])
@pytest.mark.parametrize("name", ["notes.md", "notes.txt"])
def test_spans_are_exact_slices_of_the_file(tmp_path: Path, splitter: str, name: str) -> None:
    path, text = md_file(tmp_path, name=name)
    chunks = split_sections(load_file(path), chunk_size=200, chunk_overlap=40, splitter=splitter)
    assert len(chunks) > 10
    for chunk in chunks:
        assert chunk.start is not None and chunk.end is not None
        assert text[chunk.start : chunk.end] == chunk.text


def test_non_ascii_and_crlf_spans_are_exact(tmp_path: Path) -> None:
    text = "# Über\r\n" + "Grüße aus Köln. " * 40 + "\r\n\r\n## Straße\r\n" + "ß" * 300 + "\r\n"
    path, _ = md_file(tmp_path, text)
    chunks = split_sections(load_file(path), chunk_size=100, chunk_overlap=20, splitter="auto")
    assert {c.headings for c in chunks} == {("Über",), ("Über", "Straße")}
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_auto_on_markdown_keeps_heading_paths(tmp_path: Path) -> None:
    path, _ = md_file(tmp_path)
    chunks = split_sections(load_file(path), chunk_size=300, chunk_overlap=0, splitter="auto")
    assert chunks[0].headings == () and chunks[0].text == "Preface paragraph before any heading."
    assert [c.headings for c in chunks if "30 days" in c.text] == [("Returns", "Refund window")]
    assert chunks[-1].headings == ("Shipping",) and chunks[-1].text == "# Shipping\nShips in 3 days."
    for chunk in chunks:  # no chunk crosses a heading: each lies inside one heading section
        assert chunk.text.count("\n#") == 0


def test_recursive_does_not_split_by_headings(tmp_path: Path) -> None:
    text = "Intro line.\n# Returns\nThirty days.\n## Window\nFrom delivery.\n# Shipping\nThree days.\n"
    path, _ = md_file(tmp_path, text)
    sections = load_file(path)
    assert len(sections) == 4
    (whole,) = split_sections(sections, chunk_size=500, chunk_overlap=0, splitter="recursive")
    assert whole.text == text.strip() and (whole.start, whole.end) == (0, len(text.strip()))
    by_heading = split_sections(sections, chunk_size=500, chunk_overlap=0, splitter="auto")
    assert [c.headings for c in by_heading] == [(), ("Returns",), ("Returns", "Window"), ("Shipping",)]


def test_recursive_chunks_report_the_heading_path_where_they_start(tmp_path: Path) -> None:
    text = "Intro.\n# Returns\n" + "r " * 40 + "\n## Window\n" + "w " * 60 + "\n# Shipping\n" + "s " * 30
    path, _ = md_file(tmp_path, text)
    chunks = split_sections(load_file(path), chunk_size=100, chunk_overlap=0, splitter="recursive")
    assert chunks[0].text.startswith("Intro.\n# Returns\nr r")  # crosses the heading...
    assert chunks[0].headings == ()  # ...and is located where it starts, in the preface
    assert [c.headings for c in chunks[1:]] == [("Returns", "Window")] * 3 + [("Shipping",)]
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_markdown_forces_markdown_separators_and_recursive_ignores_them() -> None:
    text = "intro words here\n## Part two\nmore words"
    results = {
        (kind, splitter): [c.text for c in split_sections([Section(text, kind=kind)], chunk_size=30,
                                                       chunk_overlap=0, splitter=splitter)]
        for kind in ("text", "markdown")
        for splitter in ("auto", "markdown", "recursive")
    }
    by_heading = ["intro words here", "## Part two\nmore words"]
    by_line = ["intro words here\n## Part two", "more words"]
    assert results[("text", "markdown")] == results[("markdown", "auto")] == results[("markdown", "markdown")] == by_heading
    assert results[("text", "auto")] == results[("text", "recursive")] == results[("markdown", "recursive")] == by_line


@pytest.mark.parametrize("splitter", ["auto", "markdown", "recursive"])
@pytest.mark.parametrize("chunk_size", [100, 333, 800])
def test_chunk_size_is_respected(tmp_path: Path, splitter: str, chunk_size: int) -> None:
    path, _ = md_file(tmp_path)
    chunks = split_sections(load_file(path), chunk_size=chunk_size, chunk_overlap=chunk_size // 5, splitter=splitter)
    assert chunks and all(len(c.text) <= chunk_size for c in chunks)
    assert max(len(c.text) for c in chunks) > chunk_size * 0.6  # and filled, not cut needlessly small


def test_overlap_repeats_the_end_of_each_chunk_at_the_start_of_the_next() -> None:
    section = Section(WORDS, start=0)
    chunks = split_sections([section], chunk_size=120, chunk_overlap=40, splitter="recursive")
    assert len(chunks) > 5
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end  # the spans overlap
        shared = WORDS[after.start : before.end]
        assert len(shared) >= 20 and before.text.endswith(shared) and after.text.startswith(shared)
    no_overlap = split_sections([section], chunk_size=120, chunk_overlap=0, splitter="recursive")
    assert all(after.start >= before.end for before, after in itertools.pairwise(no_overlap))


def test_no_blank_chunks_and_index_runs_across_the_file() -> None:
    sections = [
        Section("   \n\n  ", start=0),
        Section("First section. " * 20, headings=("A",)),
        Section("\n\n\n", headings=("B",)),
        Section("Second section. " * 20, headings=("C",)),
    ]
    for splitter in ("auto", "markdown", "recursive"):
        chunks = split_sections(sections, chunk_size=80, chunk_overlap=10, splitter=splitter)
        assert [c.index for c in chunks] == list(range(len(chunks)))
        assert all(c.text.strip() and c.text == c.text.strip() for c in chunks)
    assert split_sections([], chunk_size=80, chunk_overlap=10, splitter="auto") == []


def test_text_is_not_prefixed_with_headings() -> None:
    (chunk,) = split_sections([Section("Body only.", headings=("Returns", "Window"), kind="markdown")],
                              chunk_size=100, chunk_overlap=0, splitter="auto")
    assert chunk == Chunk("Body only.", 0, None, ("Returns", "Window"), None, None, None)


def test_pdf_chunks_carry_their_page(tmp_path: Path) -> None:
    path = tmp_path / "policy.pdf"
    path.write_bytes(pdf_bytes([["Page one says hello."], [], [f"line {i} of page three" for i in range(30)]]))
    for splitter in ("auto", "recursive"):
        chunks = split_sections(load_file(path), chunk_size=100, chunk_overlap=10, splitter=splitter)
        assert chunks[0].locator() == {"page": 1}
        assert {c.page for c in chunks} == {1, 3} and len(chunks) > 3
        assert all(c.start is None and c.end is None for c in chunks)


def test_record_chunks_carry_their_record(tmp_path: Path) -> None:
    path = tmp_path / "faq.jsonl"
    path.write_text("\n".join(json.dumps({"q": f"question {i}", "a": "answer " * 30}) for i in range(3)))
    chunks = split_sections(load_file(path), chunk_size=100, chunk_overlap=0, splitter="recursive")
    assert {c.record for c in chunks} == {0, 1, 2}  # records are never merged, even by the plain splitter
    assert all(c.locator() == {"record": c.record} for c in chunks)


def test_docx_chunks_carry_heading_paths(tmp_path: Path) -> None:
    chunks = split_sections(load_file(write_docx(tmp_path / "h.docx")), chunk_size=400, chunk_overlap=0,
                            splitter="auto")
    assert [c.headings for c in chunks] == [(), ("Returns",), ("Returns", "Refund window"), ("Shipping",)]
    assert "Region | Days" in chunks[2].text
    (merged,) = split_sections(load_file(tmp_path / "h.docx"), chunk_size=400, chunk_overlap=0, splitter="recursive")
    assert merged.text.startswith("Acme handbook") and merged.text.endswith("system prompt")
    assert merged.start is None  # docx sections have no offsets to rebuild a span from


def test_locator_holds_only_known_fields_and_is_json_ready(tmp_path: Path) -> None:
    path, _ = md_file(tmp_path)
    chunk = split_sections(load_file(path), chunk_size=200, chunk_overlap=0, splitter="auto")[3]
    locator = chunk.locator()
    assert locator == {"headings": ["Returns"], "start": chunk.start, "end": chunk.end}
    assert json.loads(json.dumps(locator)) == locator
    full = Chunk("t", 0, page=2, headings=("A",), start=5, end=6, record=1).locator()
    assert full == {"page": 2, "headings": ["A"], "start": 5, "end": 6, "record": 1}
    assert Chunk("t", 0, None, (), None, None, None).locator() == {}


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_bad_sizes_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="chunk_overlap"):
        split_sections([Section("text")], chunk_size=size, chunk_overlap=overlap, splitter="auto")


def test_unknown_splitter_is_refused() -> None:
    with pytest.raises(ValueError, match="splitter must be one of"):
        split_sections([Section("text")], chunk_size=100, chunk_overlap=0, splitter="semantic")  # type: ignore[arg-type]
