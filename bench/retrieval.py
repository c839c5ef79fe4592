"""Knowledge retrieval on three corpora: hit@1, hit@5, MRR per search method and fusion, and indexing speed.

    python bench/retrieval.py [--corpora pyref,man,zh] [--no-speed] [--rounds 2] [--verbose] [--strict]
                              [--rerank FOLDER|judge] [--rerank-candidates 20]

Corpora, none written here but the last:

- pyref: the 79 reference topics shipped in the standard library (`pydoc_data.topics`), one .txt file per
  topic; a topic that repeats another's text (compound.txt holds with.txt...) answers the same questions;
- man: about 300 man pages of common command-line packages, rendered from /usr/share/man at run time
  (bench/corpora/manpages.py; indexing them takes about 5 minutes on a CPU);
- zh: a fictional Chinese bakery's knowledge file (bench/answers/gpts/knowledge/zh-bakery/zh_shop.md), with off-topic questions
  that show whether `min_score` on the embedder's similarity can refuse them.

Each is indexed through a real spec with the packaged all-MiniLM-L6-v2. A question scores at the rank of
the first retrieved chunk that answers it, among the top 5. Methods, side by side: bm25 with the old terms
(bm25s's regex words) and the new (gptbuilder.knowledge.tokenize), dense, the old hybrid (equal-weight
RRF over the old terms), and the hybrid as shipped (DEFAULT_FUSION). The questions are split in two by
a hash of their text: fusions are tuned on the tuning half (the best of a grid is printed and should be
what DEFAULT_FUSION ships), and the headline numbers are the other half's, which no choice was made on.

Indexing speed (pyref) is measured against raw `SentenceTransformer.encode` of the same chunk texts (batch
64, normalised) in the same run. The model is loaded and warmed before either side is timed; rounds
alternate the two sides and the best of each is kept. Our full index counts everything a user waits for:
reading, chunking, embedding, Chroma writes and the BM25 index.

With --rerank, a row more: the shipped hybrid's top --rerank-candidates reordered by a cross-encoder saved in
FOLDER (`knowledge.rerank.model`), or by the embedded chat model as a yes/no judge (`judge`), and the
seconds reranking took per question.

Targets: hybrid >= the better of bm25 and dense on hit@1, hit@5 and MRR on each corpus (issue #14);
indexing >= 0.8x raw encode throughput; a no-change re-index <= 5% of the full index time (issue #3).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from pydoc_data.topics import topics
from typing import Any

from corpora import manpages, zh_shop

from gptbuilder.errors import ModelError
from gptbuilder.knowledge.calibrate import calibrate
from gptbuilder.knowledge.chunking import split_sections
from gptbuilder.knowledge.embeddings import get_embedder, packaged_model_path
from gptbuilder.knowledge.index import DEFAULT_FUSION, LEGACY_FUSION, Fusion, KnowledgeIndex
from gptbuilder.knowledge.loaders import load_file
from gptbuilder.knowledge.rerank import CrossEncoderReranker, JudgeReranker, Reranker
from gptbuilder.knowledge.retriever import reranked
from gptbuilder.knowledge.tokenize import LEGACY_TOKENIZER
from gptbuilder.loader import load_spec

K = 5
MODES = ("bm25", "dense", "hybrid")
CONTAINS = 0.8  # share of a topic's paragraphs another topic must repeat to answer the same questions

# (question, topics that answer it, "kw" when it names the keyword/identifier, "para" when it paraphrases)
QUESTIONS: list[tuple[str, tuple[str, ...], str]] = [
    ("How does the with statement call __enter__ and __exit__?", ("with", "context-managers"), "kw"),
    ("What does the global statement do?", ("global",), "kw"),
    ("What does the nonlocal statement do?", ("nonlocal",), "kw"),
    ("Are assert statements removed when Python runs with -O?", ("assert",), "kw"),
    ("What does raise ... from set the __cause__ to?", ("raise",), "kw"),
    ("How do I set a breakpoint in pdb?", ("debugger",), "kw"),
    ("What does __slots__ do?", ("attribute-access",), "kw"),
    ("What is the difference between __str__ and __repr__?", ("customization",), "kw"),
    ("When is __getattr__ called compared to __getattribute__?", ("attribute-access",), "kw"),
    ("What is __radd__ for?", ("numeric-types",), "kw"),
    ("What does the yield statement do?", ("yield",), "kw"),
    ("How does from module import * decide which names to import?", ("import",), "kw"),
    ("How does except* handle exception groups?", ("try",), "kw"),
    ("What does str.strip() remove?", ("string-methods",), "kw"),
    ("What does dict.setdefault do?", ("typesmapping",), "kw"),
    ("How does list.sort use the key argument?", ("typesseq",), "kw"),
    ("What is the Ellipsis object?", ("bltin-ellipsis-object", "types"), "kw"),
    ("How does a match statement with case patterns work?", ("compound",), "kw"),
    ("What does a lambda expression create?", ("lambda",), "kw"),
    ("How do chained comparisons like a < b < c evaluate?", ("comparisons",), "kw"),
    ("How do I write hexadecimal, octal and binary integer literals?", ("integers",), "kw"),
    ("What is the difference between the is operator and ==?", ("comparisons",), "kw"),
    ("What does __init_subclass__ do?", ("specialnames",), "kw"),
    ("What attributes does a function object have, like __defaults__ and __code__?", ("types",), "kw"),
    ("What does the pass statement do?", ("pass",), "kw"),
    ("How does async with use __aenter__ and __aexit__?", ("async",), "kw"),
    ("What does the await expression do?", ("await", "async"), "kw"),
    ("How can an inner function change a variable of the function around it?", ("nonlocal", "naming"), "para"),
    ("Why does assigning to a variable inside a function make Python complain it was referenced before assignment?", ("naming",), "para"),
    ("When does the code in a loop's else clause run?", ("for", "while", "break"), "para"),
    ("Why does a list used as a default argument keep its contents between calls?", ("function",), "para"),
    ("How can I make my objects usable as dictionary keys?", ("customization", "typesmapping"), "para"),
    ("Which objects count as false in a condition?", ("truth", "booleans"), "para"),
    ("How do I let instances of my class be compared with less-than and greater-than?", ("customization", "comparisons"), "para"),
    ("How do I make instances of my class behave like a function when called?", ("callable-types",), "para"),
    ("How do I make my class support len() and indexing with square brackets?", ("sequence-types",), "para"),
    ("How do I customize what the plus sign does for my own objects?", ("numeric-types",), "para"),
    ("How do I exit a loop early?", ("break",), "para"),
    ("How do I skip the rest of the current loop iteration?", ("continue",), "para"),
    ("Does the cleanup block still run if the function returns inside the try?", ("try", "return"), "para"),
    ("How do I catch several different errors with one handler?", ("try",), "para"),
    ("Which operators bind more tightly than others?", ("operator-summary",), "para"),
    ("How do I format a number with a comma separating the thousands?", ("formatstrings",), "para"),
    ("How can I remove a prefix from the start of a string?", ("string-methods",), "para"),
    ("How do I split a sentence into words?", ("string-methods",), "para"),
    ("How do I take every second element of a list?", ("slicings", "typesseq"), "para"),
    ("What happens when I add an integer and a floating point number?", ("conversions", "binary"), "para"),
    ("How do I write a string where backslashes are not treated as escapes?", ("strings",), "para"),
    ("What does a function give back if it never returns anything explicitly?", ("bltin-null-object", "return"), "para"),
    ("How do I find out which class an object is an instance of?", ("specialattrs", "bltin-type-objects"), "para"),
    ("Why can't methods see variables defined directly in the class body?", ("naming",), "para"),
    ("How do I stop the debugger at a specific line of my program?", ("debugger",), "para"),
    ("How do I write numbers with an imaginary part?", ("imaginary", "numbers"), "para"),
    ("Can I put underscores in big numbers to make them readable?", ("integers", "floating"), "para"),
    ("How do I remove an element from a list by its position?", ("del", "typesseq-mutable"), "para"),
    ("How do I look up a key in a dictionary and get a fallback value if it is absent?", ("typesmapping",), "para"),
    ("Do dictionaries remember the order keys were added in?", ("typesmapping", "types"), "para"),
    ("Why are names starting with two underscores renamed inside a class?", ("atom-identifiers", "id-classes"), "para"),
    ("How can I control how a class itself is created, for example by choosing its metaclass?", ("specialnames", "class"), "para"),
    ("How do I flip all the bits of an integer?", ("unary",), "para"),
    ("Is minus two squared written -2 ** 2 equal to 4 or -4?", ("power", "operator-summary"), "para"),
    ("How do I run setup and teardown code around a block automatically?", ("with", "context-managers"), "para"),
    ("How do I write a function that produces values one at a time, lazily?", ("yield", "types"), "para"),
    ("How do I use code from another file of my project?", ("import",), "para"),
    ("How does a module declare the list of names it exports?", ("import",), "para"),
]


def write_corpus(root: Path) -> Path:
    """One .txt per reference topic under root/gpts/knowledge/pyref, and the spec that indexes them."""
    folder = root / "gpts" / "knowledge" / "pyref"
    folder.mkdir(parents=True)
    for name, text in topics.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    spec = root / "gpts" / "pyref.yaml"
    spec.write_text(
        "name: Python reference\n"
        "instructions: Answer questions about the Python language from the reference and cite it.\n"
        'knowledge: {files: ["knowledge/pyref/*.txt"], top_k: 5}\n',
        encoding="utf-8",
    )
    return spec


def answering_topics() -> dict[str, set[str]]:
    """Each topic → itself and every topic that repeats (almost) all its paragraphs."""
    paragraphs = {name: [p.strip() for p in text.split("\n\n") if len(p.strip()) > 60] for name, text in topics.items()}
    answering = {name: {name} for name in topics}
    for name, own in paragraphs.items():
        for other, text in topics.items():
            if other != name and own and sum(p in text for p in own) / len(own) >= CONTAINS:
                answering[name].add(other)
    return answering


def expected_sources() -> list[set[str]]:
    """For each question, the knowledge files (relative to the spec) that answer it."""
    unknown = sorted({t for _, answer, _ in QUESTIONS for t in answer} - set(topics))
    if unknown:
        raise SystemExit(f"questions name topics that do not exist: {', '.join(unknown)}")
    answering = answering_topics()
    return [{f"knowledge/pyref/{t}.txt" for topic in answer for t in answering[topic]} for _, answer, _ in QUESTIONS]


def chunk_texts(index: KnowledgeIndex) -> list[str]:
    """The chunk texts the index embeds, computed independently with the spec's chunking settings."""
    config = index.config
    files, _ = index.files()
    texts = []
    for path in files.values():
        chunks = split_sections(
            load_file(path), chunk_size=config.chunk_size, chunk_overlap=config.chunk_overlap, splitter=config.splitter
        )
        texts.extend(c.text for c in chunks)
    return texts


@dataclass
class Corpus:
    """A benchmark corpus indexed through a real spec: its questions and how a chunk answers one."""

    name: str
    index: KnowledgeIndex
    questions: list[tuple[str, tuple[str, ...], str]]
    answers: Callable[[dict[str, Any], int], bool]  # (chunk metadata, question number) → answers it
    off_topic: list[str] = field(default_factory=list)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # chunk id → metadata, filled after indexing

    def rank(self, ids: list[str], number: int) -> int | None:
        """1-based rank of the first answering chunk among the top K ids, else None."""
        for rank, chunk_id in enumerate(ids[:K], 1):
            if self.answers(self.meta[chunk_id], number):
                return rank
        return None


def spec_index(root: Path, name: str, files: str, data: Path, **knowledge: Any) -> KnowledgeIndex:
    """A spec for a corpus folder under root/gpts/knowledge/name, and its index over data."""
    spec = root / "gpts" / f"{name}.yaml"
    extra = "".join(f", {k}: {v}" for k, v in knowledge.items())
    spec.write_text(
        f"name: {name}\ninstructions: Answer from the knowledge and cite it.\n"
        f'knowledge: {{files: ["{files}"], top_k: {K}{extra}}}\n',
        encoding="utf-8",
    )
    gpt = load_spec(spec)
    return KnowledgeIndex(gpt.id, gpt.spec.knowledge, gpt.folder, data)


def build_corpora(root: Path, names: list[str]) -> list[Corpus]:
    """The corpora asked for, written under root and indexed (the pyref one is built by main)."""
    out = []
    if "man" in names:
        folder = root / "gpts" / "knowledge" / "man"
        written = set(manpages.write_corpus(folder))
        missing = sorted({p for _, pages, _ in manpages.QUESTIONS for p in pages} - written)
        if missing:
            raise SystemExit(f"man-page questions name pages this machine lacks: {', '.join(missing)}")
        golds = [{f"knowledge/man/{p}.txt" for p in pages} for _, pages, _ in manpages.QUESTIONS]
        index = spec_index(root, "man", "knowledge/man/*.txt", root / "data-man")
        out.append(Corpus("man", index, manpages.QUESTIONS, lambda meta, n: meta["source"] in golds[n]))
    if "zh" in names:
        folder = root / "gpts" / "knowledge" / "zh"
        folder.mkdir(parents=True)
        shutil.copy(zh_shop.FILE, folder / zh_shop.FILE.name)
        index = spec_index(root, "zh", "knowledge/zh/*.md", root / "data-zh")

        def section(meta: dict[str, Any], n: int) -> bool:
            headings = json.loads(meta.get("loc_headings") or "[]")
            return bool(headings) and headings[-1] in zh_shop.QUESTIONS[n][1]

        out.append(Corpus("zh", index, zh_shop.QUESTIONS, section, zh_shop.OFF_TOPIC))
    return out


def fill_meta(corpus: Corpus) -> None:
    """Every chunk's metadata, for judging ranked ids without fetching them one query at a time."""
    collection = corpus.index._collection(corpus.index._read_manifest()["collection"])  # the bench reads the store directly
    data = collection.get(include=["metadatas"])
    corpus.meta = dict(zip(data["ids"], data["metadatas"]))


def is_tuning(question: str) -> bool:
    """Half the questions, fixed by a hash of their text (so adding one moves no other): fusion is tuned on these."""
    return hashlib.sha256(question.encode()).digest()[0] % 2 == 0


def scores(ranks: list[int | None]) -> dict[str, float]:
    """hit@1, hit@5 and MRR@5 of a list of ranks (None: not in the top K)."""
    n = len(ranks) or 1
    return {
        "hit@1": sum(r == 1 for r in ranks) / n,
        "hit@5": sum(r is not None for r in ranks) / n,
        "mrr@5": sum(1 / r for r in ranks if r) / n,
    }


def fusion_grid() -> list[Fusion]:
    """The fusions tried on the tuning split: RRF at three k, min-max and z-score, BM25 weight 0.1 to 0.9."""
    weights = [round(0.1 * i, 1) for i in range(1, 10)]
    grid = [Fusion("rrf", w, round(1 - w, 1), k) for k in (10, 30, 60) for w in weights]
    grid += [Fusion(method, w, round(1 - w, 1)) for method in ("minmax", "zscore") for w in weights]  # type: ignore[arg-type]
    return grid


def describe(fusion: Fusion) -> str:
    """A fusion in a few characters."""
    k = f" k={fusion.k}" if fusion.method == "rrf" else ""
    return f"{fusion.method}{k} bm25 {fusion.bm25:g} dense {fusion.dense:g}"


def evaluate(corpora: list[Corpus], verbose: bool, rerank: tuple[Reranker, int] | None = None) -> dict[str, Fusion]:
    """Per corpus, rank every question by each method; tune the fusion on the tuning half; print the scoring half."""
    rows: dict[str, dict[str, list[int | None]]] = {}
    candidates: dict[str, list[dict[str, list[tuple[str, float]]]]] = {}
    for corpus in corpora:
        fill_meta(corpus)
        legacy = KnowledgeIndex(corpus.index.gpt_id, corpus.index.config, corpus.index.folder, corpus.index._data_dir,
                                embedder=corpus.index.embedder, tokenizer=LEGACY_TOKENIZER)
        got, old = [], []
        for question, _, _ in corpus.questions:
            got.append(corpus.index.candidates(question, K))
            old.append(legacy.candidates(question, K))
        candidates[corpus.name] = got
        ranked = {
            "bm25 (old terms)": [[i for i, _ in c.get("bm25", [])] for c in old],
            "bm25": [[i for i, _ in c.get("bm25", [])] for c in got],
            "dense": [[i for i, _ in c.get("dense", [])] for c in got],
            "hybrid (old)": [[i for i, _ in LEGACY_FUSION.fuse(c)] for c in old],
            "hybrid (old fusion, new terms)": [[i for i, _ in LEGACY_FUSION.fuse(c)] for c in got],
            "hybrid": [[i for i, _ in DEFAULT_FUSION.fuse(c)] for c in got],
        }
        rows[corpus.name] = {m: [corpus.rank(ids, n) for n, ids in enumerate(lists)] for m, lists in ranked.items()}
        if rerank is not None:
            reranker, depth = rerank
            start = time.perf_counter()
            lists = [[h.chunk_id for h in reranked(reranker, q, corpus.index.search(q, k=depth, mode="hybrid"))]
                     for q, _, _ in corpus.questions]
            seconds = (time.perf_counter() - start) / len(corpus.questions)
            print(f"reranked {corpus.name}: {seconds:.2f} s per question ({depth} candidates, search included)")
            rows[corpus.name][f"hybrid + rerank ({Path(reranker.name).name})"] = [corpus.rank(ids, n) for n, ids in enumerate(lists)]
        # the real search path agrees with the offline fusion
        for n, (question, _, _) in enumerate(corpus.questions[:5]):
            real = [h.chunk_id for h in corpus.index.search(question, k=K, mode="hybrid")]
            if real != ranked["hybrid"][n][:K]:
                print(f"warning: {corpus.name}: search() and the offline fusion differ for {question!r}")

    # tuning: macro-average over corpora of MRR on the tuning half, hit@1 breaking ties
    def objective(fusion: Fusion) -> tuple[float, float]:
        mrr = hit1 = 0.0
        for corpus in corpora:
            idx = [n for n, (q, _, _) in enumerate(corpus.questions) if is_tuning(q)]
            ranks = [corpus.rank([i for i, _ in fusion.fuse(candidates[corpus.name][n])], n) for n in idx]
            s = scores(ranks)
            mrr += s["mrr@5"] / len(corpora)
            hit1 += s["hit@1"] / len(corpora)
        return round(mrr, 4), round(hit1, 4)

    tried = sorted(((objective(f), f) for f in fusion_grid()), key=lambda item: item[0], reverse=True)
    best = tried[0][1]
    print(f"fusion tuned on the tuning half (macro MRR@5, hit@1): best {describe(best)} {tried[0][0]};  "
          f"shipped DEFAULT_FUSION {describe(DEFAULT_FUSION)} {objective(DEFAULT_FUSION)};  "
          f"old {describe(LEGACY_FUSION)} {objective(LEGACY_FUSION)}")
    for (mrr, hit1), fusion in tried[1:5]:
        print(f"  next: {describe(fusion)} ({mrr}, {hit1})")
    for corpus in corpora:
        rows[corpus.name]["hybrid (tuned this run)"] = [
            corpus.rank([i for i, _ in best.fuse(c)], n) for n, c in enumerate(candidates[corpus.name])
        ]

    for corpus in corpora:
        table = rows[corpus.name]
        scoring = [n for n, (q, _, _) in enumerate(corpus.questions) if not is_tuning(q)]
        print(f"\ncorpus {corpus.name}: {len(corpus.meta)} chunks, {len(corpus.questions)} questions "
              f"({len(scoring)} scored, {len(corpus.questions) - len(scoring)} tuning)")
        print(f"{'method':32}{'hit@1':>7}{'hit@5':>7}{'mrr@5':>7}   all questions: {'hit@1':>6}{'hit@5':>7}{'mrr@5':>7}")
        for method, ranks in table.items():
            s, a = scores([ranks[n] for n in scoring]), scores(ranks)
            now = f"{s['hit@1']:7.3f}{s['hit@5']:7.3f}{s['mrr@5']:7.3f}"
            print(f"{method:32}{now}   {'':15}{a['hit@1']:6.3f}{a['hit@5']:7.3f}{a['mrr@5']:7.3f}")
        single = {m: max(scores([table[x][n] for n in scoring])[m] for x in ("bm25", "dense")) for m in ("hit@1", "hit@5", "mrr@5")}
        hybrid = scores([table["hybrid"][n] for n in scoring])
        verdict = all(hybrid[m] >= single[m] - 1e-9 for m in single)
        print(f"target hybrid >= max(bm25, dense) on hit@1, hit@5, MRR (scored half): {'PASS' if verdict else 'FAIL'}")
        if verbose:
            methods = list(table)
            print("  " + " ".join(f"{m[:6]:>6}" for m in methods) + "  question")
            for n, (question, _, kind) in enumerate(corpus.questions):
                cells = " ".join(f"{table[m][n] or '-':>6}" for m in methods)
                print(f"  {cells}  [{'tune' if is_tuning(question) else 'score'} {kind}] {question}")
        if corpus.off_topic:
            calibration(corpus)
    return {"best": best}


def calibration(corpus: Corpus) -> None:
    """Whether a min_score on the best hit's similarity separates the questions from off-topic ones."""
    result = calibrate(corpus.index, [question for question, _, _ in corpus.questions], corpus.off_topic)
    on, off = result.on_topic.values(), result.off_topic.values()
    print(f"min_score ({result.embedder}): questions' best similarity {min(on):.3f}..{max(on):.3f}; "
          f"off-topic questions' {min(off):.3f}..{max(off):.3f}")
    if result.suggested is not None:
        print(f"  separates: min_score {result.suggested} refuses every off-topic question and no other")
    else:
        floor = result.least_wrong()
        cut, through = result.refused(floor)
        print(f"  does not separate: the fewest mistakes, min_score {floor}, refuses {len(cut)} of {len(on)} "
              f"questions and lets {len(through)} of {len(off)} off-topic through")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--corpora", default="pyref,man,zh", help="comma-separated: pyref, man, zh")
    parser.add_argument("--no-speed", action="store_true", help="skip the indexing-speed measurement")
    parser.add_argument("--verbose", action="store_true", help="print each question's rank per method")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--rerank", metavar="FOLDER|judge", help="add a row reranked by this cross-encoder folder, "
                        "or by the embedded chat model as a yes/no judge")
    parser.add_argument("--rerank-candidates", type=int, default=20, help="how many hybrid results are reranked")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.rerank_candidates < K:
        parser.error(f"--rerank-candidates must be at least {K}")
    rerank = (rerank_model(args.rerank), args.rerank_candidates) if args.rerank else None
    names = [n.strip() for n in args.corpora.split(",") if n.strip()]

    root = Path(tempfile.mkdtemp(prefix="gptbuilder-bench-"))
    corpora: list[Corpus] = []
    speed_ok = True
    if "pyref" in names:
        index, speed_ok = pyref_speed(root, args.rounds, skip=args.no_speed)
        expected = expected_sources()
        corpora.append(Corpus("pyref", index, QUESTIONS, lambda meta, n: meta["source"] in expected[n]))
    for corpus in build_corpora(root, names):
        start = time.perf_counter()
        report = corpus.index.update()
        print(f"indexed {corpus.name}: {len(report.added)} files, {report.chunks} chunks in {time.perf_counter() - start:.1f} s")
        corpora.append(corpus)
    evaluate(corpora, args.verbose, rerank)
    return 0 if speed_ok or not args.strict else 1


def rerank_model(name: str) -> Reranker:
    """The reranker --rerank names: the embedded chat model as judge, or a cross-encoder folder (checked now)."""
    if name == "judge":
        from gptbuilder.models.registry import create_model
        from gptbuilder.spec import ModelConfig

        return JudgeReranker(create_model(ModelConfig(), base_dir=Path.cwd()))
    try:
        return CrossEncoderReranker(name, field="--rerank")
    except ModelError as exc:
        raise SystemExit(str(exc)) from exc


def pyref_speed(root: Path, rounds: int, *, skip: bool) -> tuple[KnowledgeIndex, bool]:
    """Index the pyref corpus (timed against raw encode unless skip); the index, and whether speed targets pass."""
    gpt = load_spec(write_corpus(root))

    def fresh_index(n: int) -> KnowledgeIndex:
        return KnowledgeIndex(gpt.id, gpt.spec.knowledge, gpt.folder, root / f"data{n}")

    if skip:
        index = fresh_index(1)
        index.update()
        return index, True
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its "Loading weights" bars would interleave with the report
    raw_model = SentenceTransformer(str(packaged_model_path()))
    texts = chunk_texts(fresh_index(0))
    warm = texts[:64]
    raw_model.encode(warm, batch_size=64, normalize_embeddings=True)
    get_embedder(gpt.spec.knowledge.embedding_model, base_dir=gpt.folder).embed(warm)  # loads the shared model

    raw_s, full_s, again_s = [], [], []
    for n in range(rounds):
        for side in ("raw", "ours") if n % 2 == 0 else ("ours", "raw"):
            if side == "raw":
                start = time.perf_counter()
                raw_model.encode(texts, batch_size=64, normalize_embeddings=True)
                raw_s.append(time.perf_counter() - start)
                continue
            index = fresh_index(n + 1)
            start = time.perf_counter()
            full = index.update()
            full_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            again = index.update()
            again_s.append(time.perf_counter() - start)
            if again.embedded or len(again.unchanged) != len(topics):
                print(f"warning: the re-index was not a no-change run: {again.to_dict()}")
    if full.embedded != len(texts):
        print(f"warning: the index embedded {full.embedded} chunks, the baseline encodes {len(texts)}")
    best_full, best_again, best_raw = min(full_s), min(again_s), min(raw_s)
    ours_rate = full.embedded / best_full
    raw_rate = len(texts) / best_raw
    print(f"pyref full index: {best_full:.2f} s for {full.embedded} chunks = {ours_rate:.1f} chunks/s;  "
          f"raw encode: {best_raw:.2f} s = {raw_rate:.1f} chunks/s;  ratio {ours_rate / raw_rate:.2f}x")
    print(f"no-change re-index: {best_again:.3f} s = {100 * best_again / best_full:.1f}% of the full index")
    speed_ok = ours_rate >= 0.8 * raw_rate
    reindex_ok = best_again <= 0.05 * best_full
    print(f"target indexing >= 0.80x raw: {'PASS' if speed_ok else 'FAIL'};  "
          f"target re-index <= 5% of full: {'PASS' if reindex_ok else 'FAIL'}")
    return index, speed_ok and reindex_ok


if __name__ == "__main__":
    sys.exit(main())
