"""KnowledgeIndex on real files and a real Chroma: search modes, incremental updates, bad input, crashes."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import gptbuilder.knowledge.index as index_module
from gptbuilder.errors import StorageError
from gptbuilder.knowledge.embeddings import FakeEmbedder
from gptbuilder.knowledge.index import Hit, KnowledgeError, KnowledgeIndex
from gptbuilder.knowledge.loaders import MAX_FILE_BYTES
from gptbuilder.loader import load_spec

from .files import pdf_bytes

WORKER = Path(__file__).with_name("index_worker.py")

RETURNS_MD = """# Returns

Unworn shoes may be returned within thirty days of delivery.

## Refund window

Refunds reach your card five business days after the parcel arrives at our depot.
"""
SHIPPING_TXT = "Parcels to Europe travel by courier and arrive in three working days. Islands may take longer.\n"
WARRANTY_PAGES = [["Acme warranty terms"], ["Batteries carry a two year warranty", "against manufacturing defects."]]

# One query per file, sharing words with that file only.
QUERIES = {
    "acme/returns.md": "refunds card depot",
    "acme/shipping.txt": "courier Europe islands",
    "acme/warranty.pdf": "batteries warranty defects",
}
MODES = ("dense", "bm25", "hybrid")


# ----- helpers -------------------------------------------------------------------------------------


def spec_text(name: str, files: Sequence[str], *, chunk_size: int = 200, extra: str = "") -> str:
    listed = ", ".join(json.dumps(f) for f in files)
    return (
        f"name: {name}\ninstructions: Answer from the files.\n"
        f"knowledge:\n  files: [{listed}]\n  chunk_size: {chunk_size}\n  chunk_overlap: 20\n{extra}"
    )


def open_index(
    write_spec: Callable[..., Path],
    gpt_id: str,
    data_dir: Path,
    *,
    files: Sequence[str] | None = None,
    chunk_size: int = 200,
    extra: str = "",
    embedder: Any = "fake",
) -> KnowledgeIndex:
    """Write `<gpt_id>.yaml`, load it with load_spec and open its index (FakeEmbedder unless told None)."""
    path = write_spec(gpt_id, spec_text(gpt_id.title(), files or [f"{gpt_id}/**/*"], chunk_size=chunk_size, extra=extra))
    loaded = load_spec(path)
    assert loaded.spec.knowledge is not None
    chosen = FakeEmbedder() if embedder == "fake" else embedder
    return KnowledgeIndex(loaded.id, loaded.spec.knowledge, loaded.folder, data_dir, embedder=chosen)


def reopen(index: KnowledgeIndex, data_dir: Path, embedder: Any = None) -> KnowledgeIndex:
    """The same GPT's index over another (or the same) data folder, as a new process would open it."""
    return KnowledgeIndex(index.gpt_id, index.config, index.folder, data_dir, embedder=embedder or FakeEmbedder())


def write_corpus(gpts_dir: Path) -> Path:
    docs = gpts_dir / "acme"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "returns.md").write_text(RETURNS_MD, encoding="utf-8")
    (docs / "shipping.txt").write_text(SHIPPING_TXT, encoding="utf-8")
    (docs / "warranty.pdf").write_bytes(pdf_bytes(WARRANTY_PAGES))
    return docs


def manifest(index: KnowledgeIndex) -> dict[str, Any]:
    return json.loads((index.dir / "manifest.json").read_text(encoding="utf-8"))


def rows(index: KnowledgeIndex) -> dict[str, tuple[str, str]]:
    """Every stored chunk of the index's current collection: id → (source, text)."""
    data = index.client.get_collection(manifest(index)["collection"]).get(include=["documents", "metadatas"])
    return {i: (meta["source"], doc) for i, doc, meta in zip(data["ids"], data["documents"], data["metadatas"])}


def sources(index: KnowledgeIndex) -> set[str]:
    return {source for source, _ in rows(index).values()}


def collection_names(client: Any) -> set[str]:
    return {c if isinstance(c, str) else c.name for c in client.list_collections()}


def assert_consistent(index: KnowledgeIndex) -> None:
    """Each file's stored chunks are one version of it, numbered 0..n-1; 'done' files match their manifest entry."""
    files = manifest(index)["files"]
    by_source: dict[str, list[str]] = {}
    for chunk_id, (source, _) in rows(index).items():
        assert source in files, f"{chunk_id} belongs to no file in the manifest"
        by_source.setdefault(source, []).append(chunk_id)
    for source, ids in by_source.items():
        versions = {i.split("#")[1] for i in ids}
        assert len(versions) == 1, f"{source} has chunks of several versions: {sorted(ids)}"
        assert sorted(int(i.split("#")[2]) for i in ids) == list(range(len(ids))), sorted(ids)
    for source, entry in files.items():
        if entry["state"] == "done":
            ids = by_source.get(source, [])
            assert len(ids) == entry["chunks"], (source, ids, entry)
            assert all(i.startswith(f"{source}#{entry['sha256'][:12]}#") for i in ids), (source, ids, entry)


def assert_equals_fresh(index: KnowledgeIndex, fresh_dir: Path) -> None:
    """The index holds exactly what indexing the same files from scratch gives, all done, BM25 in step."""
    assert_consistent(index)
    fresh = reopen(index, fresh_dir)
    fresh.update()
    assert rows(index) == rows(fresh)
    assert all(entry["state"] == "done" for entry in manifest(index)["files"].values())
    assert manifest(index)["files"] == manifest(fresh)["files"]  # same files: same hashes, sizes, mtimes, counts
    bm25_ids = json.loads((index.dir / "bm25" / "ids.json").read_text(encoding="utf-8"))
    assert sorted(bm25_ids) == sorted(rows(index))
    assert not index.is_stale()


def snapshot(index: KnowledgeIndex, queries: Sequence[str]) -> list[list[tuple[str, str, float]]]:
    return [[(h.chunk_id, h.text, round(h.score, 5)) for h in index.search(q, mode=m)] for q in queries for m in MODES]


class FailingEmbedder(FakeEmbedder):
    """The fake embedder that, once armed, embeds `allowed` more batches and then raises like a dying model."""

    def __init__(self) -> None:
        super().__init__()
        self.allowed: int | None = None
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        if self.allowed is not None:
            if self.allowed == 0:
                raise RuntimeError("embedder died")
            self.allowed -= 1
        return super().embed(texts)


def paragraphs(tag: str, word: str, count: int = 3) -> str:
    """`count` paragraphs of ~150 characters (one chunk each at chunk_size 200), all naming `word`."""
    return "\n\n".join(
        f"Paragraph {n} of {tag} mentions {word} {n} times, with some filler words so that each paragraph "
        f"is long enough to fill one chunk."
        for n in range(count)
    ) + "\n"


def write_numbered(docs: Path, count: int, word: str) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (docs / f"note{n:02d}.txt").write_text(paragraphs(f"note{n:02d}", f"{word}{n:02d}"), encoding="utf-8")


# ----- first index and search ----------------------------------------------------------------------


def test_search_before_any_index_says_how_to_build_it(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    write_corpus(gpts_dir)
    index = open_index(write_spec, "acme", tmp_path / "data")
    with pytest.raises(KnowledgeError, match="gptbuilder index acme"):
        index.search("refunds")


def test_first_update_indexes_every_file_and_each_mode_ranks_the_matching_file_first(
    write_spec, gpts_dir: Path, tmp_path: Path
) -> None:
    docs = write_corpus(gpts_dir)
    index = open_index(write_spec, "acme", tmp_path / "data")
    report = index.update()
    assert report.rebuilt and not report.warnings and not report.skipped
    assert report.added == ["acme/returns.md", "acme/shipping.txt", "acme/warranty.pdf"]
    assert report.updated == report.unchanged == report.removed == []
    # returns.md: one chunk per heading section; shipping.txt: one; warranty.pdf: one per page with text
    assert report.chunks == report.embedded == 5 == len(rows(index))
    assert sources(index) == set(QUERIES)
    assert report.seconds > 0

    for mode in MODES:
        for source, query in QUERIES.items():
            hits = index.search(query, mode=mode)
            assert hits and hits[0].source == source, (mode, query, [(h.source, h.score) for h in hits])
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            assert len({h.chunk_id for h in hits}) == len(hits)

    refund = index.search(QUERIES["acme/returns.md"], mode="hybrid")[0]
    text = (docs / "returns.md").read_text(encoding="utf-8")
    assert refund.locator["headings"] == ["Returns", "Refund window"]
    assert text[refund.locator["start"] : refund.locator["end"]] == refund.text
    assert refund.text.startswith("## Refund window") and "depot" in refund.text

    shipping = index.search(QUERIES["acme/shipping.txt"], mode="bm25")[0]
    assert shipping.locator == {"start": 0, "end": len(SHIPPING_TXT.strip())}
    assert shipping.text == SHIPPING_TXT.strip()

    battery = index.search(QUERIES["acme/warranty.pdf"], mode="dense")[0]
    assert isinstance(battery, Hit)
    assert battery.locator == {"page": 2}
    assert "two year warranty" in battery.text and "Acme warranty terms" not in battery.text
    assert json.loads(json.dumps(battery.to_dict()))["id"] == battery.chunk_id


def test_scores_and_similarity_mean_the_same_thing_in_every_mode(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    write_corpus(gpts_dir)
    index = open_index(write_spec, "acme", tmp_path / "data")
    index.update()
    query = QUERIES["acme/returns.md"]
    by_mode = {mode: {h.chunk_id: h for h in index.search(query, k=5, mode=mode)} for mode in MODES}
    dense, bm25, hybrid = by_mode["dense"], by_mode["bm25"], by_mode["hybrid"]
    assert all(h.score == pytest.approx(h.similarity) and -1.0 <= h.similarity <= 1.0001 for h in dense.values())
    assert all(h.score > 0 for h in bm25.values())
    assert set(bm25) < set(dense)  # bm25 returns only chunks sharing a word with the query
    # hybrid is reciprocal-rank fusion of the two rankings: at most 1/61 from each
    assert all(0 <= h.score <= 1 + 1e-9 for h in hybrid.values())  # min-max fusion: weights summing to 1
    for chunk_id, hit in hybrid.items():
        # a chunk's cosine similarity to the query does not depend on how it was ranked
        assert hit.similarity == pytest.approx(dense[chunk_id].similarity, abs=1e-4)
        if chunk_id in bm25:
            assert bm25[chunk_id].similarity == pytest.approx(hit.similarity, abs=1e-4)
    assert len(index.search(query, k=1)) == 1
    assert index.search("   ") == []


def test_hybrid_fuses_both_scores_of_every_candidate(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    """A chunk one method ranks beyond its depth is scored there for real, not counted as that method's floor."""
    write_corpus(gpts_dir)
    index = open_index(write_spec, "acme", tmp_path / "data")
    index.update()
    query = "refunds card courier islands"
    ranked = index.candidates(query, 1)  # depth 20: fewer chunks than that would make both lists whole anyway
    assert {i for i, _ in ranked["dense"]} == {i for i, _ in ranked["bm25"]}
    whole_bm25 = {h.chunk_id: h.score for h in index.search(query, k=100, mode="bm25")}
    for chunk_id, score in ranked["bm25"]:
        assert score == pytest.approx(whole_bm25.get(chunk_id, 0.0), abs=1e-6)  # the real BM25 score, 0 when no word is shared
    dense = {h.chunk_id: h.similarity for h in index.search(query, k=100, mode="dense")}
    for chunk_id, similarity in ranked["dense"]:
        assert similarity == pytest.approx(dense[chunk_id], abs=1e-4)


# ----- incremental updates -------------------------------------------------------------------------


def test_second_update_without_changes_embeds_nothing(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    write_corpus(gpts_dir)
    index = open_index(write_spec, "acme", tmp_path / "data")
    first = index.update()
    before = rows(index)
    again = reopen(index, tmp_path / "data").update()  # a new process: state comes from disk
    assert again.embedded == 0 and not again.rebuilt
    assert again.unchanged == first.added and again.added == again.updated == again.removed == []
    assert again.chunks == first.chunks and rows(index) == before


def test_changing_one_file_reembeds_only_it_and_search_never_returns_the_old_text(
    write_spec, gpts_dir: Path, tmp_path: Path
) -> None:
    docs = write_corpus(gpts_dir)
    (docs / "fleet.md").write_text("# Fleet\n\n" + paragraphs("fleet", "zeppelin"), encoding="utf-8")
    index = open_index(write_spec, "acme", tmp_path / "data")
    index.update()
    assert index.search("zeppelin", mode="bm25")[0].source == "acme/fleet.md"

    (docs / "fleet.md").write_text("# Fleet\n\n" + paragraphs("fleet", "hovercraft", count=4), encoding="utf-8")
    report = index.update()
    new_chunks = [cid for cid, (source, _) in rows(index).items() if source == "acme/fleet.md"]
    assert report.updated == ["acme/fleet.md"] and report.added == report.removed == []
    assert sorted(report.unchanged) == sorted(QUERIES)
    assert report.embedded == len(new_chunks) == 4  # one chunk a paragraph, the heading joins the first
    assert not report.rebuilt
    for mode in MODES:
        assert all("zeppelin" not in h.text for h in index.search("zeppelin", k=10, mode=mode)), mode
        top = index.search("hovercraft", mode=mode)[0]
        assert top.source == "acme/fleet.md" and "hovercraft" in top.text
    assert not any("zeppelin" in text for _, text in rows(index).values())
    assert_equals_fresh(index, tmp_path / "fresh")


def test_touching_a_file_without_changing_it_embeds_nothing(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    docs = write_corpus(gpts_dir)
    index = open_index(write_spec, "acme", tmp_path / "data")
    index.update()
    before = rows(index)
    st = (docs / "returns.md").stat()
    os.utime(docs / "returns.md", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    report = index.update()
    assert report.embedded == 0 and report.updated == [] and "acme/returns.md" in report.unchanged
    assert rows(index) == before
    assert manifest(index)["files"]["acme/returns.md"]["mtime_ns"] == st.st_mtime_ns + 5_000_000_000
    assert not index.is_stale()  # the new mtime was recorded, so the next check needs no hashing


def test_deleting_a_file_removes_its_chunks(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    docs = write_corpus(gpts_dir)
    index = open_index(write_spec, "acme", tmp_path / "data")
    index.update()
    (docs / "shipping.txt").unlink()
    report = index.update()
    assert report.removed == ["acme/shipping.txt"] and report.embedded == 0
    assert report.chunks == 4 and "acme/shipping.txt" not in sources(index)
    assert "acme/shipping.txt" not in manifest(index)["files"]
    for mode in MODES:
        assert all(h.source != "acme/shipping.txt" for h in index.search("courier Europe islands", k=10, mode=mode))
    assert_equals_fresh(index, tmp_path / "fresh")


def test_adding_a_file_embeds_only_it(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    docs = write_corpus(gpts_dir)
    index = open_index(write_spec, "acme", tmp_path / "data")
    index.update()
    (docs / "sub").mkdir()
    (docs / "sub" / "gift.json").write_text(json.dumps([{"card": "gift voucher", "valid": "one year"}]), encoding="utf-8")
    report = index.update()
    assert report.added == ["acme/sub/gift.json"] and report.embedded == 1
    assert sorted(report.unchanged) == sorted(QUERIES) and report.chunks == 6
    hit = index.search("gift voucher", mode="hybrid")[0]
    assert hit.source == "acme/sub/gift.json" and hit.locator == {"record": 0}
    assert_equals_fresh(index, tmp_path / "fresh")


def test_is_stale_follows_files_and_settings(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    docs = write_corpus(gpts_dir)
    data = tmp_path / "data"
    index = open_index(write_spec, "acme", data)
    assert index.is_stale()
    index.update()
    assert not index.is_stale()
    assert not reopen(index, data).is_stale()

    (docs / "shipping.txt").write_text(SHIPPING_TXT + "Now also by rail.\n", encoding="utf-8")
    assert index.is_stale()
    index.update()
    assert not index.is_stale()

    (docs / "new.txt").write_text("A new file about kites.\n", encoding="utf-8")
    assert index.is_stale()
    index.update()
    assert not index.is_stale()

    (docs / "new.txt").unlink()
    assert index.is_stale()
    index.update()
    assert not index.is_stale()

    assert open_index(write_spec, "acme", data, chunk_size=300).is_stale()
    renamed = FakeEmbedder()
    renamed.name = "fake-v2"
    assert open_index(write_spec, "acme", data, embedder=renamed).is_stale()


def test_a_bm25_search_matching_no_word_returns_no_hits(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    write_corpus(gpts_dir)
    index = open_index(write_spec, "acme", tmp_path / "data")
    index.update()
    assert index.search("xylophone", mode="bm25") == []
    assert index.search("?!", mode="bm25") == []  # punctuation only: no terms left
    assert [h.source for h in index.search("xylophone", k=5, mode="hybrid")]  # dense still ranks every chunk


def test_an_update_through_one_index_object_is_seen_by_another(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    """Two objects for one GPT in one process (say the UI's and the API's agents) answer from the same index."""
    docs = write_corpus(gpts_dir)
    reader = open_index(write_spec, "acme", tmp_path / "data")
    writer = reopen(reader, tmp_path / "data")
    reader.update()
    assert reader.search(QUERIES["acme/returns.md"], mode="bm25")[0].source == "acme/returns.md"
    (docs / "fleet.txt").write_text("Hovercraft cross the channel twice a day.\n", encoding="utf-8")
    assert writer.update().added == ["acme/fleet.txt"]
    for mode in MODES:
        hits = reader.search("hovercraft channel", mode=mode)
        assert hits and hits[0].source == "acme/fleet.txt", mode


# ----- settings changes ----------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["chunk_size", "embedding_model"])
def test_a_settings_change_reindexes_only_that_gpt_and_drops_its_old_collection(
    change: str, write_spec, gpts_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    write_corpus(gpts_dir)
    (gpts_dir / "beta").mkdir()
    (gpts_dir / "beta" / "faq.md").write_text("# Opening hours\n\nThe shop opens at nine on weekdays.\n", encoding="utf-8")
    (gpts_dir / "beta" / "staff.txt").write_text(paragraphs("staff", "rota"), encoding="utf-8")
    acme = open_index(write_spec, "acme", data)
    beta = open_index(write_spec, "beta", data)
    acme.update()
    beta.update()
    assert collection_names(acme.client) == {"gpt-acme-1", "gpt-beta-1"}
    beta_manifest = (beta.dir / "manifest.json").read_bytes()
    beta_hits = snapshot(beta, ["opening hours weekdays", "rota"])

    if change == "chunk_size":
        changed = open_index(write_spec, "acme", data, chunk_size=1000)
    else:
        renamed = FakeEmbedder()
        renamed.name = "fake-v2"
        changed = open_index(write_spec, "acme", data, embedder=renamed)
    assert changed.is_stale() and not beta.is_stale()
    report = changed.update()
    assert report.rebuilt and sorted(report.added) == sorted(QUERIES) and report.unchanged == []
    assert report.embedded == report.chunks == len(rows(changed))
    assert manifest(changed)["collection"] == "gpt-acme-2"
    assert collection_names(changed.client) == {"gpt-acme-2", "gpt-beta-1"}  # the old acme collection is gone
    assert manifest(changed)["settings"]["chunk_size"] == (1000 if change == "chunk_size" else 200)
    assert changed.search(QUERIES["acme/returns.md"])[0].source == "acme/returns.md"
    assert not changed.is_stale()

    assert (beta.dir / "manifest.json").read_bytes() == beta_manifest
    fresh_beta = reopen(beta, data)
    assert not fresh_beta.is_stale()
    assert snapshot(fresh_beta, ["opening hours weekdays", "rota"]) == beta_hits


@pytest.mark.slow
def test_the_packaged_model_finds_paraphrases_and_switching_models_rebuilds(
    write_spec, gpts_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    write_corpus(gpts_dir)
    real = open_index(write_spec, "acme", data, embedder=None)  # the spec's default: packaged all-MiniLM-L6-v2
    report = real.update()
    assert report.embedded == 5 and manifest(real)["settings"]["embedding_model"] == "all-MiniLM-L6-v2"
    # no word in common with the files: only a real model connects these
    hits = real.search("Can I get my money back for sneakers I never wore?", mode="dense")
    assert hits[0].source == "acme/returns.md" and hits[0].similarity > 0.3
    assert real.search("How long are power cells guaranteed?", mode="dense")[0].source == "acme/warranty.pdf"
    assert real.search("How quickly is an order delivered to France?", mode="dense")[0].source == "acme/shipping.txt"

    switched = open_index(write_spec, "acme", data, extra="  embedding_model: fake\n", embedder=None)
    assert isinstance(switched.embedder, FakeEmbedder)
    assert switched.is_stale()
    report = switched.update()
    assert report.rebuilt and report.embedded == 5
    assert manifest(switched)["settings"]["embedding_model"] == "fake"
    assert collection_names(switched.client) == {"gpt-acme-2"}
    assert switched.search(QUERIES["acme/shipping.txt"])[0].source == "acme/shipping.txt"


# ----- bad input -----------------------------------------------------------------------------------


def test_a_glob_matching_nothing_is_named_in_a_warning(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    write_corpus(gpts_dir)
    index = open_index(write_spec, "acme", tmp_path / "data", files=["acme/*.md", "manuals/**/*.pdf"])
    report = index.update()
    assert report.added == ["acme/returns.md"]
    assert [w for w in report.warnings if "manuals/**/*.pdf" in w and "matches no file" in w]


def test_a_symlink_to_a_file_outside_the_spec_folder_is_refused(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    docs = write_corpus(gpts_dir)
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.txt").write_text("The vault code is swordfish.\n", encoding="utf-8")
    (docs / "leak.txt").symlink_to(outside / "secret.txt")
    (docs / "leakdir").symlink_to(outside, target_is_directory=True)
    index = open_index(write_spec, "acme", tmp_path / "data")
    report = index.update()
    refused = [w for w in report.warnings if "symlink pointing outside" in w]
    assert any("acme/leak.txt" in w for w in refused)
    assert any("acme/leakdir/secret.txt" in w for w in refused)
    assert sorted(report.added) == sorted(QUERIES)
    assert sources(index) == set(QUERIES)
    assert not any("swordfish" in text for _, text in rows(index).values())
    for mode in MODES:
        assert all("swordfish" not in h.text for h in index.search("vault code swordfish", k=10, mode=mode))


def test_binary_and_empty_files_are_warned_about_and_the_rest_is_indexed(
    write_spec, gpts_dir: Path, tmp_path: Path
) -> None:
    docs = write_corpus(gpts_dir)
    (docs / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    (docs / "empty.md").write_bytes(b"")
    index = open_index(write_spec, "acme", tmp_path / "data")
    report = index.update()
    assert any("image.txt" in w and "binary" in w for w in report.warnings)
    assert any("empty.md" in w and "no text" in w for w in report.warnings)
    assert "acme/image.txt" in report.skipped
    assert sources(index) == set(QUERIES) and report.chunks == 5
    assert index.search(QUERIES["acme/shipping.txt"])[0].source == "acme/shipping.txt"


def test_files_that_cannot_be_indexed_do_not_keep_the_index_stale(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    """A skipped file is reported as skipped (not added), and the next check does not redo the run."""
    docs = write_corpus(gpts_dir)
    (docs / "image.txt").write_bytes(b"\x00\x01\x02binary\x00" * 100)
    index = open_index(write_spec, "acme", tmp_path / "data")
    first = index.update()
    assert first.skipped == ["acme/image.txt"]
    assert "acme/image.txt" not in first.added
    assert not index.is_stale()  # else every question re-runs update() (KnowledgeBase.ensure_fresh)
    bm25_inode = (index.dir / "bm25").stat().st_ino
    again = index.update()
    assert again.added == again.updated == [] and again.embedded == 0
    assert (index.dir / "bm25").stat().st_ino == bm25_inode  # nothing changed, so BM25 was not rebuilt


def test_a_50_mb_file_is_refused_by_size_quickly(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    docs = write_corpus(gpts_dir)
    subprocess.run(["truncate", "-s", "50M", str(docs / "dump.txt")], check=True)
    assert (docs / "dump.txt").stat().st_size == 50 * 1024 * 1024 > MAX_FILE_BYTES
    index = open_index(write_spec, "acme", tmp_path / "data")
    started = time.perf_counter()
    report = index.update()
    assert time.perf_counter() - started < 10
    assert report.skipped == ["acme/dump.txt"]
    assert any("dump.txt" in w and "52,428,800 bytes" in w and "limit" in w for w in report.warnings)
    assert sources(index) == set(QUERIES)


def test_an_oversized_file_is_refused_from_its_size_without_reading_it(
    write_spec, gpts_dir: Path, tmp_path: Path
) -> None:
    """A 1 GB log matched by a glob costs a stat, not a full read (hashing it takes seconds per update)."""
    docs = write_corpus(gpts_dir)
    index = open_index(write_spec, "acme", tmp_path / "data")
    index.update()
    subprocess.run(["truncate", "-s", "1G", str(docs / "server.log.txt")], check=True)
    started = time.perf_counter()
    report = index.update()
    elapsed = time.perf_counter() - started
    assert report.skipped == ["acme/server.log.txt"]
    assert elapsed < 1.5, f"refusing an oversized file took {elapsed:.1f} s: it was read"


# ----- crash safety --------------------------------------------------------------------------------


def test_an_embedder_crash_mid_update_leaves_a_searchable_index_that_the_next_update_completes(
    write_spec, gpts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = gpts_dir / "acme"
    write_numbered(docs, 8, "alpha")
    embedder = FailingEmbedder()
    index = open_index(write_spec, "acme", tmp_path / "data", embedder=embedder)
    index.update()
    assert len(rows(index)) == 24
    monkeypatch.setattr(index_module, "EMBED_BATCH", 2)  # 3 chunks a file: one file per batch

    for n in range(1, 6):
        (docs / f"note{n:02d}.txt").write_text(paragraphs(f"note{n:02d}", f"omega{n:02d}"), encoding="utf-8")
    embedder.allowed = 1
    with pytest.raises(RuntimeError, match="embedder died"):
        index.update()
    embedder.allowed = None

    states = {k: v["state"] for k, v in manifest(index)["files"].items()}
    assert states["acme/note01.txt"] == "done" and states["acme/note02.txt"] == "pending"
    assert index.is_stale()
    assert_consistent(index)
    for mode in ("dense", "hybrid"):
        top = index.search("omega01", mode=mode)[0]  # the batch that finished is searchable
        assert top.source == "acme/note01.txt" and "omega01" in top.text
    for mode in MODES:
        assert all("alpha01" not in h.text for h in index.search("alpha01", k=30, mode=mode))
        assert index.search("alpha07", mode=mode)[0].source == "acme/note07.txt"  # untouched files still answer

    report = index.update()
    assert sorted(report.updated) == [f"acme/note{n:02d}.txt" for n in range(2, 6)]
    assert report.embedded == 12 and not report.rebuilt
    assert "acme/note01.txt" in report.unchanged
    assert_equals_fresh(index, tmp_path / "fresh")
    texts = [text for _, text in rows(index).values()]
    assert len(texts) == len(set(texts)) == 24
    assert not any(f"alpha{n:02d}" in t for t in texts for n in range(1, 6))


def test_a_disk_that_fills_mid_update_is_a_storage_error_and_the_next_update_completes(
    write_spec, gpts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = gpts_dir / "acme"
    write_numbered(docs, 8, "alpha")
    index = open_index(write_spec, "acme", tmp_path / "data")
    index.update()
    monkeypatch.setattr(index_module, "EMBED_BATCH", 2)  # 3 chunks a file: one file per batch
    for n in range(1, 6):
        (docs / f"note{n:02d}.txt").write_text(paragraphs(f"note{n:02d}", f"omega{n:02d}"), encoding="utf-8")
    flush, batches = index_module.KnowledgeIndex._flush, []

    def filling(self, *args, **kwargs):
        batches.append(1)
        if len(batches) > 1:  # SQLite under Chroma says so in words, not with an OSError
            raise sqlite3.OperationalError("database or disk is full")
        return flush(self, *args, **kwargs)

    monkeypatch.setattr(index_module.KnowledgeIndex, "_flush", filling)
    with pytest.raises(StorageError, match="could not write the knowledge index of acme: the disk is full; searches use"):
        index.update()
    monkeypatch.setattr(index_module.KnowledgeIndex, "_flush", flush)
    assert_consistent(index)
    assert index.search("omega01", mode="hybrid")[0].source == "acme/note01.txt"  # the batch that was written
    assert index.search("alpha07", mode="hybrid")[0].source == "acme/note07.txt"  # untouched files still answer
    report = index.update()
    assert sorted(report.updated) == [f"acme/note{n:02d}.txt" for n in range(2, 6)]
    assert_equals_fresh(index, tmp_path / "fresh")


def test_an_embedder_crash_mid_rebuild_keeps_the_old_index_answering(
    write_spec, gpts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = gpts_dir / "acme"
    write_numbered(docs, 6, "alpha")
    embedder = FailingEmbedder()
    index = open_index(write_spec, "acme", tmp_path / "data", embedder=embedder)
    index.update()
    queries = ["alpha00", "alpha03 filler", "paragraph"]
    before = snapshot(index, queries)
    manifest_before = (index.dir / "manifest.json").read_bytes()
    monkeypatch.setattr(index_module, "EMBED_BATCH", 2)

    embedder.allowed = 1
    with pytest.raises(RuntimeError, match="embedder died"):
        index.update(rebuild=True)
    embedder.allowed = None
    assert (index.dir / "manifest.json").read_bytes() == manifest_before
    assert snapshot(index, queries) == before
    assert snapshot(reopen(index, tmp_path / "data"), queries) == before
    assert_consistent(index)

    report = index.update()
    assert report.embedded == 0
    assert_equals_fresh(index, tmp_path / "fresh")

    again = index.update(rebuild=True)
    assert again.rebuilt and again.embedded == 18
    assert_equals_fresh(index, tmp_path / "fresh2")


def test_the_update_after_a_crashed_rebuild_leaves_no_orphan_collection(
    write_spec, gpts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_numbered(gpts_dir / "acme", 6, "alpha")
    embedder = FailingEmbedder()
    index = open_index(write_spec, "acme", tmp_path / "data", embedder=embedder)
    index.update()
    monkeypatch.setattr(index_module, "EMBED_BATCH", 2)
    embedder.allowed = 1
    with pytest.raises(RuntimeError, match="embedder died"):
        index.update(rebuild=True)
    embedder.allowed = None
    index.update()
    # the half-built collection of the killed rebuild holds a partial copy of the vectors: nothing uses it
    assert collection_names(index.client) == {manifest(index)["collection"]}


def test_a_sigkilled_update_is_completed_by_the_next_one(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    docs = gpts_dir / "acme"
    data = tmp_path / "data"
    write_numbered(docs, 30, "alpha")
    spec = write_spec("acme", spec_text("Acme", ["acme/*.txt"], chunk_size=600))  # one chunk a file
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}

    def worker(delay: float) -> subprocess.Popen[str]:
        command = [sys.executable, str(WORKER), str(spec), str(data), str(delay), "2"]
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # The first index is built in a child too: this process opens the Chroma folder only after the kill.
    first = worker(0.0)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert json.loads(out)["embedded"] == 30
    manifest_path = data / "knowledge" / "acme" / "manifest.json"
    v1 = {k: v["sha256"] for k, v in json.loads(manifest_path.read_text(encoding="utf-8"))["files"].items()}

    for n in range(30):
        (docs / f"note{n:02d}.txt").write_text(paragraphs(f"note{n:02d}", f"omega{n:02d}"), encoding="utf-8")
    child = worker(0.2)
    deadline = time.monotonic() + 30
    try:
        # Kill once a batch is marked pending after at least one file was re-embedded: a mixed state.
        while True:
            assert child.poll() is None, f"the worker finished before it could be killed: {child.communicate()}"
            assert time.monotonic() < deadline, "the worker never marked a batch pending"
            try:
                entries = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
            except (OSError, ValueError):
                entries = {}
            states = {k: (v["state"], v.get("sha256")) for k, v in entries.items()}
            if any(s == "pending" for s, _ in states.values()) and any(
                s == "done" and sha != v1[k] for k, (s, sha) in states.items()
            ):
                break
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL

    state = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
    pending = sorted(k for k, v in state.items() if v["state"] == "pending")
    assert pending and len(pending) < 30
    index = open_index(write_spec, "acme", data, files=["acme/*.txt"], chunk_size=600)
    assert index.is_stale()
    assert_consistent(index)
    redone = sorted(k for k, v in state.items() if v["state"] == "done" and v["sha256"] != v1[k])
    top = index.search(f"omega{redone[0][-6:-4]}", mode="hybrid")[0]  # the interrupted index still answers
    assert top.source == redone[0] and "omega" in top.text

    report = index.update()
    assert not report.rebuilt and report.added == [] and report.removed == []
    assert set(pending) <= set(report.updated)
    assert report.embedded == len(report.updated) and len(report.updated) + len(report.unchanged) == 30
    assert_equals_fresh(index, tmp_path / "fresh")
    texts = [text for _, text in rows(index).values()]
    assert len(texts) == len(set(texts)) == 30
    assert not any("alpha" in text for text in texts)


# ----- chroma server -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    """A real `chroma run` on a free loopback port; yields the port and always stops the server."""
    port = _free_port()
    executable = Path(sys.executable).with_name("chroma")
    log = (tmp_path / "chroma-server.log").open("wb")
    server = subprocess.Popen(
        [str(executable), "run", "--path", str(tmp_path / "chroma-server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (tmp_path / "chroma-server.log").read_text(errors="replace")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "chroma server did not answer its heartbeat in 30 s"
            time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def test_a_chroma_server_from_the_environment_holds_the_vectors(
    chroma_server: int, write_spec, gpts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chromadb
    from chromadb.config import Settings

    monkeypatch.setenv("GPTBUILDER_CHROMA_URL", f"http://127.0.0.1:{chroma_server}")
    data = tmp_path / "data"
    write_corpus(gpts_dir)
    index = open_index(write_spec, "acme", data)
    report = index.update()
    assert report.embedded == report.chunks == 5
    for mode in MODES:
        for source, query in QUERIES.items():
            assert index.search(query, mode=mode)[0].source == source

    server = chromadb.HttpClient(host="127.0.0.1", port=chroma_server, settings=Settings(anonymized_telemetry=False))
    assert collection_names(server) == {"gpt-acme-1"}
    assert server.get_collection("gpt-acme-1").count() == 5
    assert not (data / "chroma").exists()

    again = reopen(index, data).update()  # a second client: the state lives on the server
    assert again.embedded == 0 and sorted(again.unchanged) == sorted(QUERIES)
    assert not (data / "chroma").exists()


# ----- progress ------------------------------------------------------------------------------------


def test_progress_hears_files_embedded_in_batches_and_nothing_when_there_is_no_work(
    write_spec, gpts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "EMBED_BATCH", 6)  # two files of three chunks per batch
    write_numbered(gpts_dir / "notes", 5, "topic")
    index = open_index(write_spec, "notes", tmp_path / "data")
    calls: list[tuple[int, int]] = []
    report = index.update(progress=lambda done, total: calls.append((done, total)))
    assert report.embedded == 15
    assert calls == [(0, 5), (2, 5), (4, 5), (5, 5)]
    calls.clear()
    index.update(progress=lambda done, total: calls.append((done, total)))
    assert calls == []  # nothing to embed: not even a (0, 0)


def test_runs_deep_inside_other_code_report_to_the_ambient_reporter(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    write_numbered(gpts_dir / "notes", 2, "topic")
    index = open_index(write_spec, "notes", tmp_path / "data")
    heard: list[tuple[str, int, int]] = []

    def reporter(gpt_id: str) -> Callable[[int, int], None]:
        return lambda done, total: heard.append((gpt_id, done, total))

    with index_module.reporting_progress(reporter):
        index.update()
    assert heard == [("notes", 0, 2), ("notes", 2, 2)]
    write_numbered(gpts_dir / "more", 1, "other")
    index.update(rebuild=True)  # outside the block: nobody hears it
    assert heard == [("notes", 0, 2), ("notes", 2, 2)]


def test_chinese_text_gets_bm25_hits(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    shop = gpts_dir / "shop"
    shop.mkdir(parents=True)
    (shop / "prices.md").write_text("## 生日蛋糕价格\n8寸蛋糕适合8至10人，售价238元。\n", encoding="utf-8")
    (shop / "hours.md").write_text("## 营业时间\n周一至周五早上7:30开门，晚上20:00打烊。\n", encoding="utf-8")
    index = open_index(write_spec, "shop", tmp_path / "data")
    index.update()
    assert [h.source for h in index.search("8个人吃的蛋糕多少钱？", mode="bm25")] == ["shop/prices.md"]
    assert index.search("你们几点开门？", mode="bm25")[0].source == "shop/hours.md"
    assert index.search("天气", mode="bm25") == []


def test_a_bm25_index_of_another_terms_scheme_is_rebuilt(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    write_corpus(gpts_dir)
    data = tmp_path / "data"
    index = open_index(write_spec, "acme", data)
    index.update()
    (index.dir / "bm25" / "tokenizer").unlink()  # as an index built before terms had a scheme name
    assert index.is_stale()
    report = index.update()
    assert report.embedded == 0 and not index.is_stale()  # only BM25 was rebuilt
    assert (index.dir / "bm25" / "tokenizer").read_text(encoding="utf-8") == "terms-v2"
    legacy = KnowledgeIndex(index.gpt_id, index.config, index.folder, data, embedder=FakeEmbedder(), tokenizer="bm25s-words")
    assert legacy.search("refunds card depot", mode="bm25")[0].source == "acme/returns.md"  # builds its own BM25 on first search
    assert (index.dir / "bm25-bm25s-words" / "ids.json").exists() and not index.is_stale()


@pytest.mark.slow
def test_embedding_model_may_name_a_local_folder(write_spec, gpts_dir: Path, tmp_path: Path) -> None:
    import shutil

    from gptbuilder.knowledge.embeddings import packaged_model_path

    write_corpus(gpts_dir)
    shutil.copytree(packaged_model_path(), gpts_dir / "models" / "my-embedder")  # a sentence-transformers folder, as a user would keep one
    index = open_index(write_spec, "acme", tmp_path / "data", extra="  embedding_model: models/my-embedder\n", embedder=None)
    assert index.update().embedded == 5
    assert index.search("How long are power cells guaranteed?", mode="dense")[0].source == "acme/warranty.pdf"
