"""A GPT's knowledge index: chromadb vectors + BM25, hybrid search, incremental and crash-safe updates."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import GPTBuilderError, storage_error
from ..paths import PathEscapeError, is_within, matching_files, safe_join
from ..spec import KnowledgeConfig
from .chunking import Chunk, split_sections
from .embeddings import Embedder, get_embedder
from .loaders import MAX_FILE_BYTES, SUPPORTED_SUFFIXES, KnowledgeFileError, load_file
from .tokenize import TOKENIZER, TOKENIZERS

MANIFEST_VERSION = 1
RRF_K = 60  # reciprocal-rank fusion constant, as in Cormack et al. 2009
# No stopword list: English lists drop words such as "is", "with", "not" that are exactly what code and
# policy questions hinge on; BM25's idf already discounts common words (bench/retrieval.py: hit@5 0.77 → 0.80).
EMBED_BATCH = 256  # chunks embedded per call: big batches keep the encoder busy
_ADD_BATCH = 1000
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


IndexProgress = Callable[[int, int], None]
"""Told how an index run goes: ``progress(files embedded, files to embed)``, from (0, n) to (n, n)."""
# Indexing often starts deep inside a chat turn (the first question after a file changed); an ambient
# reporter lets the CLI show it without threading a callback through the agent and every stage.
_reporter: ContextVar[Callable[[str], IndexProgress] | None] = ContextVar("gptbuilder_index_reporter", default=None)


@contextmanager
def reporting_progress(reporter: Callable[[str], IndexProgress]) -> Iterator[None]:
    """Within the block, index runs with work to do and no `progress` of their own report to ``reporter(gpt_id)``."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


class KnowledgeError(GPTBuilderError):
    """The knowledge index cannot be built or searched."""


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk: where it comes from, its text and how well it matched."""

    source: str
    text: str
    score: float
    similarity: float
    locator: dict[str, Any]
    chunk_id: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "text": self.text,
            "score": round(self.score, 6),
            "similarity": round(self.similarity, 6),
            "locator": self.locator,
            "id": self.chunk_id,
        }


@dataclass(frozen=True)
class Fusion:
    """How hybrid search merges the BM25 and dense rankings of one query.

    ``rrf``: each list adds weight / (k + rank); ``minmax``: each list's scores scaled to 0..1 over its
    candidates (a chunk a list did not return counts 0), then a weighted sum; ``zscore``: the same with
    scores standardised (a missing chunk counts as the list's lowest).
    """

    method: Literal["rrf", "minmax", "zscore"] = "rrf"
    bm25: float = 1.0
    dense: float = 1.0
    k: int = RRF_K

    def fuse(self, ranked: dict[str, list[tuple[str, float]]]) -> list[tuple[str, float]]:
        """Chunk ids with their fused scores, best first, from each mode's (id, score) list, best first."""
        weights = {"bm25": self.bm25, "dense": self.dense}
        scaled: dict[str, tuple[dict[str, float], float]] = {}
        for mode, pairs in ranked.items():
            if self.method == "rrf":
                scaled[mode] = ({i: 1.0 / (self.k + rank + 1) for rank, (i, _) in enumerate(pairs)}, 0.0)
            else:
                scaled[mode] = _normalised(pairs, standardise=self.method == "zscore")
        ids = {i for pairs in ranked.values() for i, _ in pairs}
        fused = {i: sum(weights[m] * values.get(i, floor) for m, (values, floor) in scaled.items()) for i in ids}
        return sorted(fused.items(), key=lambda item: -item[1])


# Chosen by bench/retrieval.py on the tuning half of three corpora (Python reference, man pages, a Chinese
# shop; macro MRR@5 0.807 against 0.720 for equal-weight RRF): RRF throws away how far ahead a list's first
# hit is, min-max keeps it, and dense similarity is the steadier signal across the three.
DEFAULT_FUSION = Fusion("minmax", bm25=0.4, dense=0.6)
LEGACY_FUSION = Fusion("rrf", 1.0, 1.0, RRF_K)  # equal-weight RRF: hybrid search before the tuning, for comparison


def _normalised(pairs: list[tuple[str, float]], *, standardise: bool) -> tuple[dict[str, float], float]:
    """Scores scaled to 0..1 (or z-scores), and the value a chunk missing from the list gets."""
    if not pairs:
        return {}, 0.0
    scores = [s for _, s in pairs]
    if standardise:
        mean = sum(scores) / len(scores)
        spread = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5 or 1.0
        values = {i: (s - mean) / spread for i, s in pairs}
        return values, min(values.values())
    low, high = min(scores), max(scores)
    return {i: (s - low) / (high - low) if high > low else 1.0 for i, s in pairs}, 0.0


@dataclass
class IndexReport:
    """What an index run did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chunks: int = 0
    embedded: int = 0
    seconds: float = 0.0
    rebuilt: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _bm25s() -> Any:
    import logging

    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import, flooding stderr
    return bm25s


def chroma_client(data_dir: Path) -> Any:
    """A Chroma server from GPTBUILDER_CHROMA_URL, else an embedded store under the data folder; no telemetry."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False)
    url = os.environ.get("GPTBUILDER_CHROMA_URL")
    if url:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        return chromadb.HttpClient(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or (443 if parsed.scheme == "https" else 8000),
            ssl=parsed.scheme == "https",
            settings=settings,
        )
    path = data_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)


class KnowledgeIndex:
    """The searchable knowledge of one GPT, kept in step with its files."""

    def __init__(
        self,
        gpt_id: str,
        config: KnowledgeConfig,
        folder: Path,
        data_dir: Path,
        *,
        embedder: Embedder | None = None,
        client: Any | None = None,
        tokenizer: str = TOKENIZER,
    ):
        self.gpt_id = gpt_id
        self.config = config
        self.folder = folder
        self.dir = data_dir / "knowledge" / gpt_id
        self.embedder = embedder or get_embedder(config.embedding_model, base_dir=folder)
        self._data_dir = data_dir
        self._client = client
        self.tokenizer = tokenizer  # BM25 terms scheme (tokenize.TOKENIZERS); another one keeps its own BM25 index
        self._bm25: tuple[Any, list[str]] | None = None
        self._bm25_stamp: tuple[int, int] | None = None
        with _locks_guard:
            self._lock = _locks.setdefault(str(self.dir.resolve()), threading.Lock())

    # ----- files -------------------------------------------------------------------------------

    def files(self) -> tuple[dict[str, Path], list[str]]:
        """The knowledge files the spec's globs match (relative name → path), and warnings."""
        found: dict[str, Path] = {}
        warnings: list[str] = []
        for pattern in self.config.files:
            try:
                joined = safe_join(self.folder, pattern)
            except PathEscapeError as exc:
                warnings.append(f"knowledge.files: {exc}")
                continue
            matches = matching_files(joined)
            if not matches:
                warnings.append(f"knowledge.files: {pattern!r} matches no file")
            for path in matches:
                relative = path.relative_to(self.folder).as_posix()
                if not is_within(self.folder, path):
                    warnings.append(f"{relative}: refused, it is a symlink pointing outside the spec's folder")
                elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
                    warnings.append(f"{relative}: skipped, {path.suffix or 'no extension'} is not a supported type")
                else:
                    found.setdefault(relative, path)
        return found, warnings

    # ----- manifest ----------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        c = self.config
        return {
            "chunk_size": c.chunk_size,
            "chunk_overlap": c.chunk_overlap,
            "splitter": c.splitter,
            "embedding_model": self.embedder.name,
        }

    def _read_manifest(self) -> dict[str, Any]:
        try:
            manifest = json.loads((self.dir / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return manifest if manifest.get("version") == MANIFEST_VERSION else {}

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.dir / "manifest.json")  # atomic: readers see the old or the new manifest

    def is_stale(self) -> bool:
        """Whether files or settings changed since the last index run (stat only, no hashing)."""
        manifest = self._read_manifest()
        if not manifest or manifest.get("settings") != self._settings():
            return True
        files, _ = self.files()
        known = manifest.get("files", {})
        if set(files) != set(known):
            return True
        for relative, path in files.items():
            entry = known[relative]
            st = path.stat()
            if entry.get("state") not in ("done", "skipped") or entry.get("size") != st.st_size or entry.get("mtime_ns") != st.st_mtime_ns:
                return True
        return not self._bm25_ready()

    # ----- chroma ------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The Chroma client (created on first use)."""
        if self._client is None:
            self._client = chroma_client(self._data_dir)
        return self._client

    def _collection(self, name: str) -> Any:
        return self.client.get_or_create_collection(
            name, embedding_function=None, metadata={"hnsw:space": "cosine", "gptbuilder_gpt": self.gpt_id}
        )

    # ----- update ------------------------------------------------------------------------------

    def update(self, *, rebuild: bool = False, progress: IndexProgress | None = None) -> IndexReport:
        """Bring the index in line with the files: embed only added or changed files, drop removed ones.

        ``progress`` hears how many of the files to embed are done (default: the ambient reporter, if any).
        A disk that runs out meanwhile is a StorageError; the index answers as before it (see _index_files).
        """
        try:
            return self._update(rebuild=rebuild, progress=progress)
        except GPTBuilderError:
            raise
        except Exception as exc:
            failed = storage_error(exc, f"the knowledge index of {self.gpt_id}",
                                   kept="searches use the index as it was, and the next update completes it")
            if failed is None:
                raise
            raise failed from None

    def _update(self, *, rebuild: bool, progress: IndexProgress | None) -> IndexReport:
        start = time.perf_counter()
        with self._lock:
            report = IndexReport()
            files, report.warnings = self.files()
            manifest = self._read_manifest()
            old_collection = manifest.get("collection")
            if rebuild or not manifest or manifest.get("settings") != self._settings():
                # Build a fresh collection and switch to it at the end, so a crash leaves the old one usable.
                generation = int(manifest.get("generation", 0)) + 1
                manifest = {
                    "version": MANIFEST_VERSION,
                    "settings": self._settings(),
                    "generation": generation,
                    "collection": f"gpt-{self.gpt_id}-{generation}",
                    "files": {},
                }
                report.rebuilt = True
                target = manifest
                _drop(self.client, target["collection"])  # leftovers of a rebuild that was killed
            else:
                target = manifest
            collection = self._collection(target["collection"])
            known: dict[str, Any] = target["files"]
            for relative in sorted(set(known) - set(files)):
                collection.delete(where={"source": relative})
                del known[relative]
                report.removed.append(relative)
            if report.removed and not report.rebuilt:
                self._write_manifest(target)
            todo: list[tuple[str, Path, str]] = []
            todo_changed = False
            for relative, path in files.items():
                st = path.stat()
                entry = known.get(relative)
                stat = (st.st_size, st.st_mtime_ns)
                if entry and entry.get("state") in ("done", "skipped") and (entry["size"], entry["mtime_ns"]) == stat:
                    (report.unchanged if entry["state"] == "done" else report.skipped).append(relative)
                    continue
                if st.st_size > MAX_FILE_BYTES:
                    report.warnings.append(
                        f"{relative}: is {st.st_size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit; split it into smaller files"
                    )
                    report.skipped.append(relative)
                    collection.delete(where={"source": relative})
                    known[relative] = {"state": "skipped", "size": st.st_size, "mtime_ns": st.st_mtime_ns}
                    todo_changed = True
                    continue
                digest = _sha256(path)
                if entry and entry.get("state") == "done" and entry.get("sha256") == digest:
                    entry.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
                    report.unchanged.append(relative)
                    continue
                (report.updated if entry else report.added).append(relative)
                todo.append((relative, path, digest))
            if todo and progress is None and (reporter := _reporter.get()) is not None:
                progress = reporter(self.gpt_id)
            self._index_files(collection, target, todo, report, persist=not report.rebuilt, progress=progress)
            if report.rebuilt:
                self._write_manifest(target)  # the switch: from here on the new collection is the index
                if old_collection and old_collection != target["collection"]:
                    _drop(self.client, old_collection)
            else:
                _drop(self.client, f"gpt-{self.gpt_id}-{int(target.get('generation', 0)) + 1}")  # a killed rebuild's leftovers
                if report.unchanged or todo or todo_changed:
                    self._write_manifest(target)
            if report.rebuilt or report.removed or todo or not self._bm25_ready():
                self._build_bm25(collection)
            report.chunks = collection.count()
        report.seconds = round(time.perf_counter() - start, 3)
        return report

    def _index_files(
        self,
        collection: Any,
        manifest: dict[str, Any],
        todo: Sequence[tuple[str, Path, str]],
        report: IndexReport,
        *,
        persist: bool,
        progress: IndexProgress | None = None,
    ) -> None:
        """Chunk, embed and store files in batches; each batch is marked pending in the manifest first."""
        known = manifest["files"]
        batch: list[tuple[str, Path, str, list[Chunk]]] = []
        size = 0
        total = len(todo)
        if progress is not None and total:
            progress(0, total)
        for number, (relative, path, digest) in enumerate(todo):
            try:
                sections = load_file(path)
            except KnowledgeFileError as exc:
                report.warnings.append(str(exc))
                report.skipped.append(relative)
                for listed in (report.added, report.updated):
                    if relative in listed:
                        listed.remove(relative)
                collection.delete(where={"source": relative})  # a file that became unreadable leaves no stale chunks
                st = path.stat()
                known[relative] = {"state": "skipped", "size": st.st_size, "mtime_ns": st.st_mtime_ns}
                continue
            chunks = split_sections(
                sections,
                chunk_size=self.config.chunk_size,
                chunk_overlap=self.config.chunk_overlap,
                splitter=self.config.splitter,
            )
            if not chunks:
                report.warnings.append(f"{relative}: no text found")
            batch.append((relative, path, digest, chunks))
            size += len(chunks)
            if size >= EMBED_BATCH:
                self._flush(collection, manifest, batch, report, persist=persist)
                batch, size = [], 0
                if progress is not None:
                    progress(number + 1, total)
        if batch:
            self._flush(collection, manifest, batch, report, persist=persist)
        if progress is not None and total:
            progress(total, total)

    def _flush(
        self,
        collection: Any,
        manifest: dict[str, Any],
        batch: list[tuple[str, Path, str, list[Chunk]]],
        report: IndexReport,
        *,
        persist: bool,
    ) -> None:
        known = manifest["files"]
        for relative, _, _, _ in batch:
            known[relative] = {"state": "pending"}
        if persist:
            self._write_manifest(manifest)  # a crash from here re-indexes these files on the next run
        ids, texts, metadatas = [], [], []
        for relative, _, digest, chunks in batch:
            collection.delete(where={"source": relative})
            for chunk in chunks:
                ids.append(f"{relative}#{digest[:12]}#{chunk.index}")
                texts.append(chunk.text)
                metadatas.append(_metadata(relative, chunk))
        embeddings = self.embedder.embed(texts)
        report.embedded += len(texts)
        for at in range(0, len(ids), _ADD_BATCH):
            part = slice(at, at + _ADD_BATCH)
            collection.add(ids=ids[part], documents=texts[part], metadatas=metadatas[part], embeddings=embeddings[part])
        for relative, path, digest, chunks in batch:
            st = path.stat()
            known[relative] = {"state": "done", "sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "chunks": len(chunks)}
        if persist:
            self._write_manifest(manifest)

    # ----- bm25 --------------------------------------------------------------------------------

    def _bm25_dir(self) -> Path:
        return self.dir / ("bm25" if self.tokenizer == TOKENIZER else f"bm25-{self.tokenizer}")

    def _bm25_ready(self) -> bool:
        """Whether the BM25 index exists and was built with this index's terms scheme (older ones lack the file)."""
        try:
            return (self._bm25_dir() / "tokenizer").read_text(encoding="utf-8") == self.tokenizer
        except OSError:
            return False

    def _build_bm25(self, collection: Any) -> None:
        bm25s = _bm25s()

        data = collection.get(include=["documents"])
        ids, texts = data["ids"], data["documents"] or []
        final = self._bm25_dir()
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if texts:
            split = TOKENIZERS[self.tokenizer]
            retriever = bm25s.BM25()
            retriever.index([split(text) for text in texts], show_progress=False)
            retriever.save(str(tmp), show_progress=False)
        (tmp / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
        (tmp / "tokenizer").write_text(self.tokenizer, encoding="utf-8")
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        self._bm25 = None

    def _load_bm25(self) -> tuple[Any, list[str]]:
        st = (self._bm25_dir() / "ids.json").stat()
        stamp = (st.st_ino, st.st_mtime_ns)
        if self._bm25 is None or self._bm25_stamp != stamp:
            bm25s = _bm25s()

            ids = json.loads((self._bm25_dir() / "ids.json").read_text(encoding="utf-8"))
            retriever = bm25s.BM25.load(str(self._bm25_dir()), show_progress=False) if ids else None
            self._bm25 = (retriever, ids)
            self._bm25_stamp = stamp
        return self._bm25

    # ----- search ------------------------------------------------------------------------------

    def search(self, query: str, *, k: int | None = None, mode: str | None = None, fusion: Fusion | None = None) -> list[Hit]:
        """The top-k chunks for a query, ranked by dense, bm25 or hybrid search (`fusion`, default DEFAULT_FUSION)."""
        k = k or self.config.top_k
        mode = mode or self.config.search
        collection, query_vector, ranked = self._candidates(query, k, mode)
        if collection is None:
            return []
        order = (fusion or DEFAULT_FUSION).fuse(ranked) if mode == "hybrid" else ranked[mode]
        order = order[:k]
        if not order:
            return []
        similarity = dict(ranked.get("dense", []))
        data = collection.get(ids=[i for i, _ in order], include=["documents", "metadatas", "embeddings"])
        rows = {i: (doc, meta, emb) for i, doc, meta, emb in zip(data["ids"], data["documents"], data["metadatas"], data["embeddings"])}
        hits = []
        for chunk_id, score in order:
            if chunk_id not in rows:
                continue
            text, meta, vector = rows[chunk_id]
            sim = similarity.get(chunk_id)
            if sim is None:
                sim = float(sum(a * b for a, b in zip(query_vector, vector)))
            hits.append(Hit(meta["source"], text, float(score), sim, _locator(meta), chunk_id))
        return hits

    def candidates(self, query: str, k: int) -> dict[str, list[tuple[str, float]]]:
        """Each mode's ranking of the chunks hybrid search fuses for the top k: (chunk id, score), best first.

        For tuning a `Fusion` without searching again (bench/retrieval.py).
        """
        return self._candidates(query, k, "hybrid")[2]

    def _candidates(self, query: str, k: int, mode: str) -> tuple[Any, list[float], dict[str, list[tuple[str, float]]]]:
        manifest = self._read_manifest()
        if not manifest:
            raise KnowledgeError(f"{self.gpt_id} has no knowledge index yet; run `gptbuilder index {self.gpt_id}`")
        collection = self._collection(manifest["collection"])
        total = collection.count()
        if total == 0 or not query.strip():
            return None, [], {}
        depth = min(total, max(k * 4, 20))
        query_vector = self.embedder.embed([query])[0]
        ranked: dict[str, list[tuple[str, float]]] = {}
        if mode in ("dense", "hybrid"):
            result = collection.query(query_embeddings=[query_vector], n_results=depth, include=["distances"])
            ranked["dense"] = [(i, 1.0 - d) for i, d in zip(result["ids"][0], result["distances"][0])]
        if mode in ("bm25", "hybrid"):
            ranked["bm25"] = self._bm25_search(query, depth, collection)
        if mode == "hybrid":
            self._score_union(query, query_vector, ranked, collection)
        return collection, query_vector, ranked

    def _score_union(
        self, query: str, query_vector: list[float], ranked: dict[str, list[tuple[str, float]]], collection: Any
    ) -> None:
        """Score each list's candidates in the other list too, so fusion compares real scores.

        A chunk only one method ranked used to count as that method's floor in the other, which buried
        chunks one method ranks 2nd and the other 25th under chunks both rank 15th (measured on the
        Python reference: hit@1 0.657 -> 0.743 on questions no choice was made on).
        """
        dense, bm25 = dict(ranked["dense"]), dict(ranked["bm25"])
        if missing := [i for i in bm25 if i not in dense]:
            data = collection.get(ids=missing, include=["embeddings"])
            for chunk_id, vector in zip(data["ids"], data["embeddings"]):
                dense[chunk_id] = float(sum(a * b for a, b in zip(query_vector, vector)))
        tokens = TOKENIZERS[self.tokenizer](query)
        if (missing := [i for i in dense if i not in bm25]) and tokens:
            retriever, ids = self._load_bm25()
            if retriever is not None:
                every = retriever.get_scores(tokens)
                position = {chunk_id: n for n, chunk_id in enumerate(ids)}
                bm25.update({i: float(every[position[i]]) for i in missing if i in position})
        ranked["dense"] = sorted(dense.items(), key=lambda item: -item[1])
        ranked["bm25"] = sorted(bm25.items(), key=lambda item: -item[1])

    def _bm25_search(self, query: str, depth: int, collection: Any) -> list[tuple[str, float]]:
        if not self._bm25_ready():  # another terms scheme's index (or none) on disk: build this one's
            with self._lock:
                if not self._bm25_ready():
                    self._build_bm25(collection)
        retriever, ids = self._load_bm25()
        if retriever is None:
            return []
        tokens = TOKENIZERS[self.tokenizer](query)
        if not tokens:
            return []
        docs, scores = retriever.retrieve([tokens], k=min(depth, len(ids)), show_progress=False)
        return [(ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]

    def all_text(self) -> Iterable[tuple[str, str]]:
        """(source, whole extracted text) of every knowledge file, for small knowledge put in the prompt whole."""
        files, _ = self.files()
        for relative, path in files.items():
            try:
                sections = load_file(path)
            except KnowledgeFileError:
                continue
            text = "\n\n".join(s.text for s in sections).strip()
            if text:
                yield relative, text


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _metadata(source: str, chunk: Chunk) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": source, "index": chunk.index}
    for key, value in chunk.locator().items():
        meta[f"loc_{key}"] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return meta


def _locator(meta: dict[str, Any]) -> dict[str, Any]:
    locator: dict[str, Any] = {}
    for key, value in meta.items():
        if key.startswith("loc_"):
            name = key[4:]
            locator[name] = json.loads(value) if name == "headings" else value
    return locator


def _drop(client: Any, name: str) -> None:
    with contextlib.suppress(Exception):  # already gone: nothing to clean up
        client.delete_collection(name)
