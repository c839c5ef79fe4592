"""`index`, `search` and `calibrate`: build a GPT's knowledge index, query it and measure it, without a model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError
from ..knowledge.index import IndexReport, KnowledgeIndex
from ..settings import Settings
from ..store import Store


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("index")(index)
    app.command("search")(search)
    app.command("calibrate")(calibrate)


def index(
    ctx: typer.Context,
    gpt_id: Annotated[str, typer.Argument(metavar="ID", help="GPT id")],
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-embed every file from scratch")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Index a GPT's knowledge files: only added or changed files are embedded."""
    report = _index_for(ctx.obj, gpt_id).update(rebuild=rebuild)
    _warn(report)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    typer.echo(
        f"{gpt_id}: {len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
        f"{len(report.removed)} removed; {report.chunks} chunks ({report.embedded} embedded) in {report.seconds:.2f} s"
        + (" [rebuilt]" if report.rebuilt else "")
    )


def search(
    ctx: typer.Context,
    gpt_id: Annotated[str, typer.Argument(metavar="ID", help="GPT id")],
    query: Annotated[str | None, typer.Argument(help="What to look for")] = None,
    k: Annotated[int | None, typer.Option("--k", min=1, max=100, help="How many chunks [default: the spec's top_k]")] = None,
    mode: Annotated[str | None, typer.Option("--search", help="dense, bm25 or hybrid [default: the spec's]")] = None,
    queries: Annotated[
        Path | None, typer.Option("--queries", help="File with one query per line; prints one JSON object per line")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Search a GPT's knowledge (indexing it first if it is missing or stale)."""
    if mode is not None and mode not in ("dense", "bm25", "hybrid"):
        raise InputError(f"--search must be dense, bm25 or hybrid, not {mode!r}")
    if (query is None) == (queries is None):
        raise InputError("give a QUERY or --queries FILE (one of the two)")
    knowledge = _index_for(ctx.obj, gpt_id)
    if knowledge.is_stale():
        _warn(knowledge.update())
    if queries is not None:
        for line in _lines(queries):
            hits = knowledge.search(line, k=k, mode=mode)
            typer.echo(json.dumps({"query": line, "results": [h.to_dict() for h in hits]}, ensure_ascii=False))
        return
    assert query is not None  # exactly one of QUERY and --queries, checked above
    hits = knowledge.search(query, k=k, mode=mode)
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
        return
    if not hits:
        typer.echo("no matching passages", err=True)
    for rank, hit in enumerate(hits, 1):
        where = hit.locator.get("page") or " > ".join(hit.locator.get("headings", [])) or ""
        typer.echo(f"{rank}. {hit.source}{f' ({where})' if where else ''}  score={hit.score:.4f} similarity={hit.similarity:.3f}")
        typer.echo("   " + " ".join(hit.text.split())[:300])


def calibrate(
    ctx: typer.Context,
    gpt_id: Annotated[str, typer.Argument(metavar="ID", help="GPT id")],
    questions: Annotated[
        Path | None, typer.Option("--questions", help="File of on-topic questions, one per line (besides the spec's tests)")
    ] = None,
    off_topic: Annotated[
        Path | None, typer.Option("--off-topic", help="File of off-topic questions, one per line (besides the built-in ones)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores and verdict as JSON")] = False,
) -> None:
    """Measure whether a min_score can refuse off-topic questions with this GPT's embedder, and suggest one."""
    from ..knowledge.calibrate import OFF_TOPIC, calibrate, questions_from_tests

    gpt = Store(ctx.obj.gpts_dir).get(gpt_id)
    knowledge = _index_for(ctx.obj, gpt_id)
    if knowledge.is_stale():
        _warn(knowledge.update())
    on, off = questions_from_tests(gpt.spec.tests)
    on += _lines(questions)
    off += [*_lines(off_topic), *OFF_TOPIC]
    if not on:
        raise InputError(f"{gpt_id} has no on-topic questions to measure: add `tests:` to its spec or pass --questions FILE")
    result = calibrate(knowledge, on, off)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    typer.echo(
        f"{gpt_id} ({result.embedder}): {len(result.on_topic)} on-topic questions score "
        f"{min(result.on_topic.values()):.2f}–{max(result.on_topic.values()):.2f}, {len(result.off_topic)} off-topic "
        f"{min(result.off_topic.values()):.2f}–{max(result.off_topic.values()):.2f}"
    )
    suggested = result.suggested
    if suggested is not None:
        typer.echo(f"separates: min_score: {suggested} refuses every off-topic question and no on-topic one")
    else:
        lowest = min(result.on_topic.values())
        above = sorted((s, q) for q, s in result.off_topic.items() if s >= lowest)
        typer.echo(
            f"does not separate: off-topic questions score up to {above[-1][0]:.2f}, at or above the lowest "
            f"on-topic one ({lowest:.2f}), so every min_score refuses real questions or answers off-topic ones:"
        )
        for score, question in reversed(above[-5:]):
            typer.echo(f"  {score:.2f}  {question}")
        floor = result.least_wrong()
        cut, through = result.refused(floor)
        typer.echo(
            f"the fewest mistakes: min_score {floor} refuses {len(cut)} on-topic and lets {len(through)} off-topic "
            "through; an embedding_model made for the knowledge's language may separate them, and the "
            "instructions can decline what gets through"
        )
    current = gpt.spec.knowledge.min_score if gpt.spec.knowledge else None
    if current is not None:
        cut, through = result.refused(current)
        typer.echo(f"the spec's min_score {current}: refuses {len(cut)} on-topic, lets {len(through)} off-topic through")


def _lines(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _index_for(settings: Settings, gpt_id: str) -> KnowledgeIndex:
    gpt = Store(settings.gpts_dir).get(gpt_id)
    if gpt.spec.knowledge is None:
        raise InputError(f"{gpt_id} has no knowledge: add a `knowledge:` section with `files:` to its spec")
    return KnowledgeIndex(gpt.id, gpt.spec.knowledge, gpt.folder, settings.data_dir)


def _warn(report: IndexReport) -> None:
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
