"""Knowledge retrieval on the Python language reference: hit@1, hit@5, MRR per search mode, and indexing speed.

    python bench/retrieval.py [--rounds 2] [--verbose] [--strict]

The corpus is one no one here wrote: the 79 reference topics shipped in the standard library
(`pydoc_data.topics`), one .txt file per topic, indexed through a real spec with the packaged
all-MiniLM-L6-v2. The questions below are what a Python user would ask, each with the topic files that
answer it; a topic that repeats another's text (compound.txt holds with.txt, specialnames.txt holds
customization.txt...) answers the same questions. A question scores at the rank of the first retrieved
chunk from an answering file, among the top 5 chunks.

Indexing speed is measured against raw `SentenceTransformer.encode` of the same chunk texts (batch 64,
normalised) in the same run. The model is loaded and warmed before either side is timed; rounds alternate
the two sides and the best of each is kept. Our full index counts everything a user waits for: reading,
chunking, embedding, Chroma writes and the BM25 index.

Targets (issue #3): hybrid hit@5 >= the better of bm25 and dense; indexing >= 0.8x raw encode
throughput; a no-change re-index <= 5% of the full index time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from pydoc_data.topics import topics

from gptbuilder.knowledge.chunking import split_sections
from gptbuilder.knowledge.embeddings import get_embedder, packaged_model_path
from gptbuilder.knowledge.index import KnowledgeIndex
from gptbuilder.knowledge.loaders import load_file
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


def rank_of_answer(index: KnowledgeIndex, question: str, expected: set[str], mode: str) -> int | None:
    """1-based rank of the first chunk from an answering file in the top K, else None."""
    for rank, hit in enumerate(index.search(question, k=K, mode=mode), 1):
        if hit.source in expected:
            return rank
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--verbose", action="store_true", help="print each question's rank per mode")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    expected = expected_sources()
    root = Path(tempfile.mkdtemp(prefix="gptbuilder-bench-"))
    gpt = load_spec(write_corpus(root))

    def fresh_index(n: int) -> KnowledgeIndex:
        return KnowledgeIndex(gpt.id, gpt.spec.knowledge, gpt.folder, root / f"data{n}")

    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its "Loading weights" bars would interleave with the report
    raw_model = SentenceTransformer(str(packaged_model_path()))
    texts = chunk_texts(fresh_index(0))
    warm = texts[:64]
    raw_model.encode(warm, batch_size=64, normalize_embeddings=True)
    get_embedder(gpt.spec.knowledge.embedding_model, base_dir=gpt.folder).embed(warm)  # loads the shared model

    raw_s, full_s, again_s = [], [], []
    for n in range(args.rounds):
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

    ranks = {mode: [rank_of_answer(index, q, exp, mode) for (q, _, _), exp in zip(QUESTIONS, expected)] for mode in MODES}
    scores = {}
    for mode, found in ranks.items():
        n = len(found)
        scores[mode] = {
            "hit@1": sum(r == 1 for r in found) / n,
            "hit@5": sum(r is not None for r in found) / n,
            "mrr@5": sum(1 / r for r in found if r) / n,
        }

    if args.verbose:
        print(f"{'bm25':>5}{'dense':>6}{'hybrid':>7}  question")
        for i, (question, _, kind) in enumerate(QUESTIONS):
            cells = "".join(f"{ranks[m][i] or '-':>{w}}" for m, w in zip(MODES, (5, 6, 7)))
            print(f"{cells}  [{kind}] {question}")
        print()

    kinds = {kind: [i for i, (_, _, k) in enumerate(QUESTIONS) if k == kind] for kind in ("kw", "para")}
    print(f"corpus: pydoc_data.topics ({len(topics)} files, {full.chunks} chunks)  questions: {len(QUESTIONS)} "
          f"({len(kinds['kw'])} keyword, {len(kinds['para'])} paraphrased)  k: {K}  rounds: {args.rounds}")
    print(f"{'mode':8}{'hit@1':>8}{'hit@5':>8}{'mrr@5':>8}{'hit@5 kw':>10}{'hit@5 para':>12}")
    for mode in MODES:
        s = scores[mode]
        by_kind = {kind: sum(ranks[mode][i] is not None for i in idx) / len(idx) for kind, idx in kinds.items()}
        print(f"{mode:8}{s['hit@1']:8.3f}{s['hit@5']:8.3f}{s['mrr@5']:8.3f}{by_kind['kw']:10.3f}{by_kind['para']:12.3f}")

    if full.embedded != len(texts):
        print(f"warning: the index embedded {full.embedded} chunks, the baseline encodes {len(texts)}")
    best_full, best_again, best_raw = min(full_s), min(again_s), min(raw_s)
    ours_rate = full.embedded / best_full
    raw_rate = len(texts) / best_raw
    print(f"full index: {best_full:.2f} s for {full.embedded} chunks = {ours_rate:.1f} chunks/s;  "
          f"raw encode: {best_raw:.2f} s = {raw_rate:.1f} chunks/s;  ratio {ours_rate / raw_rate:.2f}x")
    print(f"no-change re-index: {best_again:.3f} s = {100 * best_again / best_full:.1f}% of the full index")

    better = max(scores["bm25"]["hit@5"], scores["dense"]["hit@5"])
    hybrid_ok = scores["hybrid"]["hit@5"] >= better
    speed_ok = ours_rate >= 0.8 * raw_rate
    reindex_ok = best_again <= 0.05 * best_full
    print(f"target hybrid hit@5 >= max(bm25, dense) = {better:.3f}: {'PASS' if hybrid_ok else 'FAIL'};  "
          f"target indexing >= 0.80x raw: {'PASS' if speed_ok else 'FAIL'};  "
          f"target re-index <= 5% of full: {'PASS' if reindex_ok else 'FAIL'}")
    return 0 if (hybrid_ok and speed_ok and reindex_ok) or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
