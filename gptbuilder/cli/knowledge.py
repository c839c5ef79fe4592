"""`index` and `search`: build a GPT's knowledge index and query it without a model."""

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
        try:
            lines = [line.strip() for line in queries.read_text(encoding="utf-8", errors="replace").splitlines()]
        except OSError as exc:
            raise InputError(f"cannot read {queries}: {exc.strerror or exc}") from None
        for line in filter(None, lines):
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


def _index_for(settings: Settings, gpt_id: str) -> KnowledgeIndex:
    gpt = Store(settings.gpts_dir).get(gpt_id)
    if gpt.spec.knowledge is None:
        raise InputError(f"{gpt_id} has no knowledge: add a `knowledge:` section with `files:` to its spec")
    return KnowledgeIndex(gpt.id, gpt.spec.knowledge, gpt.folder, settings.data_dir)


def _warn(report: IndexReport) -> None:
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
