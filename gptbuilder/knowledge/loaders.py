"""Turn one knowledge file (md, txt, pdf, docx, html, csv, json, jsonl) into plain-text Sections."""

from __future__ import annotations

import codecs
import csv
import importlib
import io
import json
import logging
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import GPTBuilderError

MAX_FILE_BYTES = 20_000_000
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".md", ".markdown", ".txt", ".pdf", ".docx", ".html", ".htm", ".csv", ".json", ".jsonl"}
)
_SNIFF_CHARS = 8192
_MAX_CONTROL_RATIO = 0.30
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\b\x1b")
_CSV_DELIMITERS = ",;\t|"
_ZIP_EXPANSION = 10  # a .docx may unzip to this many times the size limit, no more (zip bombs)

logger = logging.getLogger("gptbuilder")


class KnowledgeFileError(GPTBuilderError):
    """A knowledge file cannot be used as given; the message names the file and the fix."""

    def __init__(self, message: str, *, path: Path | str | None = None):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Section:
    """One unit of a file's text: a page, a heading section, a record, or the whole file."""

    text: str
    page: int | None = None
    headings: tuple[str, ...] = ()
    start: int | None = None
    record: int | None = None
    kind: str = "text"


def _fail(path: Path, problem: str, fix: str) -> KnowledgeFileError:
    return KnowledgeFileError(f"{path}: {problem}; {fix}", path=path)


def load_file(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> list[Section]:
    """Extract text units from one knowledge file; KnowledgeFileError when it cannot be used."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise _fail(path, f"unsupported file type {suffix or '(no suffix)'!r}", f"use one of {kinds}, or convert it")
    data = _read_bytes(path, max_bytes)
    if not data:
        return []
    if suffix == ".pdf":
        return _load_pdf(path, data)
    if suffix == ".docx":
        return _load_docx(path, data, max_bytes)
    text = _decode(path, data)
    return _TEXT_LOADERS[suffix](path, text, data)


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise _fail(path, "file not found", "check the path in knowledge.files") from None
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})", "check the file's permissions") from exc
    if not path.is_file():
        raise _fail(path, "is not a regular file", "list files, not folders, in knowledge.files")
    if size > max_bytes:
        raise _fail(path, f"is {size:,} bytes, over the {max_bytes:,}-byte limit", "split it into smaller files")
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})", "check the file's permissions") from exc
    if len(data) > max_bytes:
        raise _fail(path, f"is over the {max_bytes:,}-byte limit", "split it into smaller files")
    return data


def _decode(path: Path, data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        text = data.decode("utf-32", errors="replace")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")
    else:
        text = data.decode("utf-8-sig", errors="replace")
    sample = text[:_SNIFF_CHARS]
    controls = sum(1 for ch in sample if (ch < " " or ch == "\x7f") and ch not in _ALLOWED_CONTROLS)
    if "\x00" in sample or controls > _MAX_CONTROL_RATIO * len(sample):
        raise _fail(path, "looks binary, not text", "save it as UTF-8 text or give it the right suffix for its type")
    return text


# --- markdown and plain text -------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?=[ \t]|$)(.*)$")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+$")


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (offset, line without its newline) for every line of ``text``."""
    offset = 0
    for line in text.split("\n"):
        yield offset, line.rstrip("\r")
        offset += len(line) + 1


def _atx_headings(text: str) -> list[tuple[int, int, str]]:
    """(offset, level, title) of every ATX heading outside fenced code blocks."""
    found: list[tuple[int, int, str]] = []
    fence = ""
    for offset, line in _lines(text):
        if fence:
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = ""
            continue
        if opened := _FENCE.match(line):
            fence = opened.group(1)
            continue
        if heading := _ATX.match(line):
            title = _CLOSING_HASHES.sub("", heading.group(2).strip()).strip()
            found.append((offset, len(heading.group(1)), title))
    return found


def _load_markdown(path: Path, text: str, data: bytes) -> list[Section]:
    # Sections tile the file (each one starts with its heading line) so a chunk's span is a slice of it.
    headings = _atx_headings(text)
    sections: list[Section] = []
    preamble_end = headings[0][0] if headings else len(text)
    if text[:preamble_end].strip():
        sections.append(Section(text[:preamble_end], start=0, kind="markdown"))
    stack: list[tuple[int, str]] = []
    pending: int | None = None  # start of heading lines with no body yet; they join the next section
    for number, (offset, level, title) in enumerate(headings):
        while stack and stack[-1][0] >= level:
            stack.pop()
        if title:
            stack.append((level, title))
        end = headings[number + 1][0] if number + 1 < len(headings) else len(text)
        start = offset if pending is None else pending
        body = text[offset:end].split("\n", 1)[1] if "\n" in text[offset:end] else ""
        if not body.strip() and end < len(text):
            pending = start
            continue
        pending = None
        sections.append(Section(text[start:end], headings=tuple(t for _, t in stack), start=start, kind="markdown"))
    return sections


def _load_txt(path: Path, text: str, data: bytes) -> list[Section]:
    return [Section(text, start=0)] if text.strip() else []


# --- headings outline shared by html and docx ----------------------------------------------------


class _Outline:
    """Collects text blocks and headings in document order into Sections with heading paths."""

    def __init__(self, kind: str):
        self.kind = kind
        self.sections: list[Section] = []
        self.stack: list[tuple[int, str]] = []
        self.blocks: list[str] = []
        self.has_body = False

    def heading(self, level: int, title: str) -> None:
        if not title:
            return
        if self.has_body:
            self._flush()
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, title))
        self.blocks.append(title)

    def add(self, text: str) -> None:
        if text.strip():
            self.blocks.append(text)
            self.has_body = True

    def finish(self) -> list[Section]:
        self._flush()
        return self.sections

    def _flush(self) -> None:
        if self.blocks:
            headings = tuple(title for _, title in self.stack)
            self.sections.append(Section("\n\n".join(self.blocks), headings=headings, kind=self.kind))
        self.blocks, self.has_body = [], False


# --- html -----------------------------------------------------------------------------------------

_HTML_DROP = frozenset({"script", "style", "noscript", "template", "iframe", "svg", "head"})
_HTML_BLOCK_TAGS = (
    "address article aside blockquote body br caption dd details dialog div dl dt fieldset figcaption figure "
    "footer form header hr html li main nav ol p pre section summary table tbody tfoot thead tr ul"
)
_HTML_BLOCKS = frozenset(_HTML_BLOCK_TAGS.split())
_HTML_HEADING = re.compile(r"^h([1-6])$")


def _collapse(text: str) -> str:
    return " ".join(text.split())


def html_sections(data: bytes | str, *, path: Path = Path("page.html")) -> list[Section]:
    """Readable text of an HTML document by heading section: scripts, styles and the head dropped."""
    return _load_html(path, "", data)  # type: ignore[arg-type]  # BeautifulSoup takes str as well as bytes


def _load_html(path: Path, text: str, data: bytes) -> list[Section]:
    bs4 = _require(path, "bs4", "beautifulsoup4")
    from bs4.element import CData, NavigableString, PreformattedString, Tag

    soup = bs4.BeautifulSoup(data, "html.parser")  # bytes, so a <meta charset> is honoured
    outline = _Outline("markdown")
    buffer: list[str] = []

    def flush() -> None:
        outline.add(_collapse("".join(buffer)))
        buffer.clear()

    # An explicit stack, not recursion: hostile pages nest thousands of tags deep.
    stack: list[tuple[Any, bool]] = [(soup, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            flush()
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString) or isinstance(node, CData):
                buffer.append(str(node))
            continue
        if not isinstance(node, Tag) or node.name in _HTML_DROP:
            continue
        if level := _HTML_HEADING.match(node.name):
            flush()
            outline.heading(int(level.group(1)), _collapse(node.get_text(" ")))
            continue
        if node.name == "pre":
            flush()
            outline.add(node.get_text().strip("\n"))
            continue
        if node.name in ("td", "th") and "".join(buffer).strip():
            buffer.append(" | ")
        if node.name in _HTML_BLOCKS:
            flush()
            stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))
    return outline.finish()


# --- pdf and docx ---------------------------------------------------------------------------------


def _require(path: Path, module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise _fail(path, f"reading {path.suffix} files needs {package}", f"`pip install {package}`") from None


def _load_pdf(path: Path, data: bytes) -> list[Section]:
    pypdf = _require(path, "pypdf", "pypdf")
    from pypdf.errors import DependencyError

    unreadable = ("cannot be read as a PDF (corrupt or truncated)", "re-export or re-download it")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise _fail(path, f"is encrypted and cannot be opened here ({exc})",
                            "`pip install cryptography`, or save an unprotected copy and list that instead") from exc
            if not opened:
                raise _fail(path, "is encrypted with a password", "save an unprotected copy and list that instead")
        pages = list(reader.pages)
    except KnowledgeFileError:
        raise
    except Exception as exc:  # pypdf raises many types on broken files
        raise _fail(path, f"{unreadable[0]}: {exc}", unreadable[1]) from exc
    sections: list[Section] = []
    failed = 0
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # one bad page should not cost the whole document
            logger.warning("%s: page %d skipped, its text cannot be extracted (%s)", path, number, exc)
            failed += 1
            continue
        if text.strip():
            sections.append(Section(text.strip(), page=number))
    if failed and not sections:
        raise _fail(path, f"{unreadable[0]}: no page's text could be extracted", unreadable[1])
    return sections


_DOCX_HEADING = re.compile(r"^heading\s*([1-6])$", re.IGNORECASE)


def _load_docx(path: Path, data: bytes, max_bytes: int) -> list[Section]:
    docx = _require(path, "docx", "python-docx")
    from docx.table import Table

    unreadable = "cannot be read as a Word .docx file (corrupt, or an old .doc)"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise _fail(path, f"{unreadable}: {exc}", "open it in Word and save as .docx") from exc
    if unzipped > _ZIP_EXPANSION * max_bytes:
        raise _fail(path, f"unzips to {unzipped:,} bytes", "split it into smaller documents")
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
    except Exception as exc:  # python-docx and lxml raise many types on broken packages
        raise _fail(path, f"{unreadable}: {exc}", "open it in Word and save as .docx") from exc
    outline = _Outline("text")
    for block in blocks:
        if isinstance(block, Table):
            outline.add(_docx_table(block))
            continue
        style = block.style.name if block.style is not None else ""
        if level := _DOCX_HEADING.match(style or ""):
            outline.heading(int(level.group(1)), _collapse(block.text))
        else:
            outline.add(block.text.strip())
    return outline.finish()


def _docx_table(table: Any) -> str:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # merged cells repeat the same element
                continue
            seen.add(id(cell._tc))
            cells.append(_collapse(cell.text))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


# --- csv, json, jsonl -----------------------------------------------------------------------------


def _load_csv(path: Path, text: str, data: bytes) -> list[Section]:
    sections: list[Section] = []
    reader = csv.reader(io.StringIO(text, newline=""), **_csv_format(text))
    try:
        header = next((row for row in reader if row), None)
        if header is None:
            return []
        names = [name.strip() or f"column {i + 1}" for i, name in enumerate(header)]
        record = 0
        for row in reader:
            if not row:
                continue
            lines = [
                f"{names[i] if i < len(names) else f'column {i + 1}'}: {value.strip()}"
                for i, value in enumerate(row)
                if value.strip()
            ]
            if lines:
                sections.append(Section("\n".join(lines), record=record))
            record += 1
    except csv.Error as exc:
        raise _fail(path, f"is not valid CSV at line {reader.line_num}: {exc}", "fix that line") from exc
    return sections


def _csv_format(text: str) -> dict[str, Any]:
    sample = text[:_SNIFF_CHARS]
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=_CSV_DELIMITERS)
    except csv.Error:  # the sniffer gives up on ragged rows; the header line still tells the delimiter
        header = sample.lstrip().split("\n", 1)[0]
        delimiter = max(_CSV_DELIMITERS, key=header.count)
        return {"delimiter": delimiter if header.count(delimiter) else ","}
    return {"dialect": sniffed}


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _render(value: Any) -> str:
    """Readable text for a JSON value: "key: value" lines for objects, nested values as compact JSON."""
    if isinstance(value, dict):
        return "\n".join(f"{key}: {_scalar(item)}" for key, item in value.items())
    if isinstance(value, list):
        return "\n".join(_scalar(item) for item in value)
    return _scalar(value)


def _load_json(path: Path, text: str, data: bytes) -> list[Section]:
    if not text.strip():
        return []
    try:
        value = json.loads(text)
        if isinstance(value, list):
            sections = [Section(_render(item), record=i) for i, item in enumerate(value)]
        elif isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
            sections = [Section(_render(value))]
        elif isinstance(value, dict):
            sections = [
                Section(_render(item) if isinstance(item, (dict, list)) else f"{key}: {_scalar(item)}",
                        headings=(str(key),), record=i)
                for i, (key, item) in enumerate(value.items())
            ]
        else:
            sections = [Section(_scalar(value))]
    except json.JSONDecodeError as exc:
        raise _fail(path, f"is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                    "fix it there (a JSON validator shows the spot)") from exc
    except RecursionError:
        raise _fail(path, "is nested too deeply to read", "flatten its structure") from None
    return [section for section in sections if section.text.strip()]


def _load_jsonl(path: Path, text: str, data: bytes) -> list[Section]:
    sections: list[Section] = []
    record = 0
    for number, (_, line) in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            rendered = _render(json.loads(line))
        except json.JSONDecodeError as exc:
            raise _fail(path, f"line {number} is not valid JSON (column {exc.colno}: {exc.msg})",
                        "fix or remove that line; each line must hold one JSON value") from exc
        except RecursionError:
            raise _fail(path, f"line {number} is nested too deeply to read", "flatten that record") from None
        if rendered.strip():
            sections.append(Section(rendered, record=record))
        record += 1
    return sections


_TEXT_LOADERS: dict[str, Callable[[Path, str, bytes], list[Section]]] = {
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".txt": _load_txt,
    ".html": _load_html,
    ".htm": _load_html,
    ".csv": _load_csv,
    ".json": _load_json,
    ".jsonl": _load_jsonl,
}
