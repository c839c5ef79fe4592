"""Training data: read text, chat records and a GPT's knowledge; dedupe; split; tokenise into fixed blocks.

Plain text is cut into paragraphs (the unit of deduplication and of the train/validation split); a JSONL
record `{"messages": [...]}` is one conversation, rendered with the base model's chat template and trained
on its assistant turns only (every other token's label is -100). Each document goes to validation when its
hash says so, so the split never changes between runs and never depends on the order of the inputs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

TEXT_SUFFIXES = frozenset({".txt", ".md"})
CHAT_SUFFIXES = frozenset({".jsonl"})
ROLES = frozenset({"system", "user", "assistant"})
VALIDATION_PERCENT = 10
MIN_DOCUMENTS = 2  # one to train on, one held out
IGNORE = -100  # the label transformers' causal LM loss skips
_PARAGRAPH = re.compile(r"\n\s*\n")


class DataError(InputError):
    """Training data that cannot be used as given; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Document:
    """One unit of training data: a paragraph of text or one conversation."""

    source: str  # file, or file:line for a chat record
    text: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # (role, content)

    @property
    def key(self) -> str:
        """sha256 of the content: equal documents share it (deduplication) and it decides the split."""
        body = self.text if self.text is not None else json.dumps(self.messages, ensure_ascii=False)
        return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Source:
    """One input as the registry records it."""

    path: str
    kind: str  # text | chat | gpt
    sha256: str


@dataclass
class Corpus:
    """Documents read from every source, with what was left out and why."""

    documents: list[Document] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)  # e.g. which lines --skip-bad skipped

    def extend(self, other: Corpus) -> None:
        """Add another corpus's documents, sources and drops."""
        self.documents += other.documents
        self.sources += other.sources
        self.dropped.update(other.dropped)
        self.notes += other.notes


@dataclass
class Stats:
    """What `train data --stats` prints."""

    block_size: int
    documents: int = 0  # read
    kept: int = 0  # after dropping
    train_documents: int = 0
    validation_documents: int = 0
    train_tokens: int = 0  # real tokens (padding not counted)
    validation_tokens: int = 0
    trainable_tokens: int = 0  # train tokens with a label (assistant turns of chats, all of text)
    train_blocks: int = 0
    validation_blocks: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sources: list[dict[str, str]] = field(default_factory=list)
    problem: str | None = None  # why there is too little to train on

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass
class Prepared:
    """Tokenised blocks for training and validation, and their statistics."""

    train: list[dict[str, list[int]]]
    validation: list[dict[str, list[int]]]
    stats: Stats

    def require_enough(self) -> None:
        """Raise DataError when there is too little data to train on."""
        if self.stats.problem:
            raise DataError(self.stats.problem)


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror or exc}") from None


def paragraphs(text: str, source: str) -> Corpus:
    """Documents from plain text, one per paragraph; blank ones are dropped."""
    corpus = Corpus()
    for part in _PARAGRAPH.split(text.replace("\r\n", "\n")):
        if part.strip():
            corpus.documents.append(Document(source, text=part.strip()))
        elif part:
            corpus.dropped["empty paragraph"] += 1
    return corpus


def _messages(record: Any) -> tuple[tuple[str, str], ...]:
    """The (role, content) pairs of one chat record; ValueError saying what is wrong."""
    if not isinstance(record, dict) or "messages" not in record:
        raise ValueError('lacks "messages" (each line must be {"messages": [{"role": ..., "content": ...}, ...]})')
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise ValueError('"messages" must be a non-empty list')
    pairs = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ValueError(f"message {i + 1} must be {{\"role\": system|user|assistant, \"content\": text}}")
        pairs.append((message["role"], message["content"]))
    if not any(role == "assistant" and content.strip() for role, content in pairs):
        raise ValueError("has no assistant message to learn from")
    return tuple(pairs)


def chat_records(text: str, source: str, *, skip_bad: bool) -> Corpus:
    """Documents from JSONL chat records; a bad line raises DataError unless ``skip_bad``."""
    corpus = Corpus()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"is not JSON ({getattr(exc, 'msg', exc)})") from None
            messages = _messages(record)
        except ValueError as exc:
            if not skip_bad:
                raise DataError(f"{source}:{number}: {exc}; fix the line or pass --skip-bad to leave it out") from None
            corpus.dropped["bad JSONL line"] += 1
            corpus.notes.append(f"{source}:{number}: {exc}")
            continue
        corpus.documents.append(Document(f"{source}:{number}", messages=messages))
    return corpus


def read_paths(paths: Sequence[Path], *, skip_bad: bool = False) -> Corpus:
    """Documents from files and folders (.txt/.md as text, .jsonl as chat records; folders searched recursively)."""
    corpus = Corpus()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES | CHAT_SUFFIXES)
            if not files:
                raise DataError(f"{path}: no .txt, .md or .jsonl file in this folder")
        elif path.is_file():
            files = [path]
        else:
            raise DataError(f"{path}: no such file or folder")
        for file in files:
            suffix = file.suffix.lower()
            if suffix not in TEXT_SUFFIXES | CHAT_SUFFIXES:
                raise DataError(f"{file}: unsupported type {suffix or '(no suffix)'!r}; give .txt or .md text, or .jsonl chat records")
            text = _read_text(file)
            chat = suffix in CHAT_SUFFIXES
            part = chat_records(text, str(file), skip_bad=skip_bad) if chat else paragraphs(text, str(file))
            part.sources.append(Source(str(file), "chat" if chat else "text", _sha256(file)))
            corpus.extend(part)
    return corpus


def gpt_knowledge(gpts_dir: Path, data_dir: Path, gpt_id: str) -> Corpus:
    """Documents from a GPT's knowledge files, read by the same loaders its index uses (one per section)."""
    from ..knowledge.index import KnowledgeIndex
    from ..knowledge.loaders import load_file
    from ..store import Store

    gpt = Store(gpts_dir).get(gpt_id)
    if gpt.spec.knowledge is None:
        raise DataError(f"{gpt_id} has no knowledge files to train on: add a `knowledge:` section with `files:` to its spec")
    files, warnings = KnowledgeIndex(gpt.id, gpt.spec.knowledge, gpt.folder, data_dir).files()
    corpus = Corpus(notes=[f"{gpt_id}: {warning}" for warning in warnings])
    for relative, path in sorted(files.items()):
        for section in load_file(path):
            corpus.extend(paragraphs(section.text, f"{gpt_id}:{relative}"))
        corpus.sources.append(Source(f"gpt:{gpt_id}/{relative}", "gpt", _sha256(path)))
    return corpus


def dedupe(documents: Iterable[Document], dropped: Counter[str]) -> list[Document]:
    """The documents with exact duplicates (same content hash) removed, first occurrence kept."""
    seen: set[str] = set()
    kept = []
    for document in documents:
        if document.key in seen:
            dropped["exact duplicate"] += 1
            continue
        seen.add(document.key)
        kept.append(document)
    return kept


def split(documents: Sequence[Document], validation_percent: int = VALIDATION_PERCENT) -> tuple[list[Document], list[Document]]:
    """(train, validation) by each document's hash; with two or more documents each side gets at least one."""
    bucket = {document.key: int(document.key[:8], 16) % 100 for document in documents}
    train = [d for d in documents if bucket[d.key] >= validation_percent]
    validation = [d for d in documents if bucket[d.key] < validation_percent]
    if len(documents) >= MIN_DOCUMENTS and not validation:
        moved = min(train, key=lambda d: (bucket[d.key], d.key))
        train.remove(moved)
        validation.append(moved)
    elif len(documents) >= MIN_DOCUMENTS and not train:
        moved = max(validation, key=lambda d: (bucket[d.key], d.key))
        validation.remove(moved)
        train.append(moved)
    return train, validation


def encode(document: Document, tokenizer: Any) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one document; text is trained on entirely, a chat on its assistant turns only."""
    eos = tokenizer.eos_token_id
    if document.text is not None:
        tokens = list(tokenizer(document.text, add_special_tokens=False)["input_ids"])
        if eos is not None:
            tokens.append(eos)
        return tokens, list(tokens)
    assert document.messages is not None
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("the base model has no chat template, so chat records cannot be rendered; train on plain text instead")
    messages = [{"role": role, "content": content} for role, content in document.messages]
    ids: list[int] = []
    labels: list[int] = []
    done = ""
    for i, message in enumerate(messages):
        # The template renders the conversation so far; each turn's text is what the next rendering adds.
        if message["role"] == "assistant":
            prompt = _render(tokenizer, messages[:i], generation_prompt=True) if i else ""
            _append(tokenizer, prompt, done, ids, labels, trained=False)
            done = prompt or done
        rendered = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        _append(tokenizer, rendered, done, ids, labels, trained=message["role"] == "assistant")
        done = rendered
    return ids, labels


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt))


def _append(tokenizer: Any, rendered: str, done: str, ids: list[int], labels: list[int], *, trained: bool) -> None:
    if not rendered.startswith(done):
        raise DataError("the base model's chat template does not render a conversation turn by turn; train on plain text instead")
    piece = rendered[len(done) :]
    if not piece:
        return
    new = list(tokenizer(piece, add_special_tokens=False)["input_ids"])
    ids += new
    labels += new if trained else [IGNORE] * len(new)


def blocks(encoded: Iterable[tuple[list[int], list[int]]], block_size: int, pad_id: int) -> list[dict[str, list[int]]]:
    """The documents' tokens, concatenated and cut into blocks of ``block_size``; the last one padded (labels -100)."""
    ids: list[int] = []
    labels: list[int] = []
    for document_ids, document_labels in encoded:
        ids += document_ids
        labels += document_labels
    out = []
    for start in range(0, len(ids), block_size):
        chunk, chunk_labels = ids[start : start + block_size], labels[start : start + block_size]
        if all(label == IGNORE for label in chunk_labels):
            continue  # nothing to learn or to measure in it
        pad = block_size - len(chunk)
        out.append(
            {
                "input_ids": chunk + [pad_id] * pad,
                "labels": chunk_labels + [IGNORE] * pad,
                "attention_mask": [1] * len(chunk) + [0] * pad,
            }
        )
    return out


def prepare(corpus: Corpus, tokenizer: Any, *, block_size: int, validation_percent: int = VALIDATION_PERCENT) -> Prepared:
    """Deduplicate, split and tokenise a corpus; `stats.problem` says when it is too small to train on."""
    dropped = Counter(corpus.dropped)
    kept = dedupe(corpus.documents, dropped)
    train, validation = split(kept, validation_percent)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_encoded = [encode(d, tokenizer) for d in train]
    validation_encoded = [encode(d, tokenizer) for d in validation]
    stats = Stats(
        block_size=block_size,
        documents=len(corpus.documents) + sum(v for k, v in corpus.dropped.items()),
        kept=len(kept),
        train_documents=len(train),
        validation_documents=len(validation),
        train_tokens=sum(len(ids) for ids, _ in train_encoded),
        validation_tokens=sum(len(ids) for ids, _ in validation_encoded),
        trainable_tokens=sum(sum(label != IGNORE for label in labels) for _, labels in train_encoded),
        dropped=dict(sorted(dropped.items())),
        notes=list(corpus.notes),
        sources=[asdict(source) for source in corpus.sources],
    )
    prepared = Prepared(blocks(train_encoded, block_size, pad_id), blocks(validation_encoded, block_size, pad_id), stats)
    stats.train_blocks, stats.validation_blocks = len(prepared.train), len(prepared.validation)
    if len(kept) < MIN_DOCUMENTS or stats.trainable_tokens < block_size or not prepared.validation:
        stats.problem = (
            f"too little data: {len(kept)} distinct document(s), {stats.trainable_tokens} trainable tokens; fine-tuning needs "
            f"at least {MIN_DOCUMENTS} distinct documents (paragraphs or chat records; one is held out for validation) "
            f"and {block_size} trainable tokens (one --block-size block) — add data or lower --block-size"
        )
    return prepared
