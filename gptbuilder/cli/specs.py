"""`validate`, `list`, `show` and `schema`: inspect GPT specs without loading any model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..catalog import load_catalog
from ..errors import SpecProblem
from ..loader import LoadedSpec, check_spec
from ..settings import Settings
from ..spec import spec_json_schema
from ..store import Store


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("validate")(validate)
    app.command("list")(list_gpts)
    app.command("show")(show)
    app.command("schema")(schema)


def validate(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(help="Spec files or folders [default: the GPTs dir]")] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Count warnings (e.g. a knowledge glob matching no file) as errors")
    ] = False,
    untrusted: Annotated[
        bool, typer.Option("--untrusted", help="Check as a spec saved through the store (no function tools, "
                           "private networks, model paths, unlisted endpoints or env vars, or others' files)")
    ] = False,
) -> None:
    """Check spec files and print every problem, in line order; exit 1 if any (or any warning, with --strict).

    A spec the store saved (`<id>.untrusted` beside it) is always checked as untrusted, and its code never imported.
    """
    settings: Settings = ctx.obj
    files = _spec_files(paths or [settings.gpts_dir])
    if not files:
        typer.echo(f"error: no spec files (*.yaml) in {', '.join(map(str, paths or [settings.gpts_dir]))}", err=True)
        raise typer.Exit(1)
    bad = warned = 0
    for file in files:
        report = check_spec(file, display=_display(file), trusted=False if untrusted else None)
        errors = [*report.errors, *report.warnings] if strict else list(report.errors)
        warnings = [] if strict else list(report.warnings)
        for problem in errors:
            typer.echo(str(problem), err=True)
        for problem in warnings:
            typer.echo(f"warning: {problem}", err=True)
        warned += bool(report.warnings)
        if errors or report.loaded is None:
            bad += 1
        else:
            typer.echo(f"ok  {_display(file)}  ({report.loaded.id})")
    with_warnings = f", {warned} with warnings" if warned and not strict else ""
    typer.echo(f"{len(files) - bad} valid, {bad} invalid{with_warnings}", err=bool(bad))
    if bad:
        raise typer.Exit(1)


def list_gpts(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list")] = False,
) -> None:
    """List the valid GPTs, featured first; broken specs are reported on stderr and skipped."""
    store = Store(ctx.obj.gpts_dir, catalog=load_catalog(ctx.obj.catalog_path))
    gpts = store.specs()
    for error in store.errors():
        first = error.problems[0] if error.problems else SpecProblem("?", "", "invalid")
        more = f" (+{len(error.problems) - 1} more)" if len(error.problems) > 1 else ""
        typer.echo(f"skipped {first}{more} — run `gptbuilder validate`", err=True)
    if as_json:
        typer.echo(json.dumps([summary(g) for g in gpts], indent=2, ensure_ascii=False))
        return
    if not gpts:
        typer.echo(f"no GPTs found: {ctx.obj.where_gpts()}", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "category", "model", "description", box=None, pad_edge=False)
    for gpt in gpts:
        table.add_row(gpt.id, gpt.spec.name, gpt.spec.category, _model_label(gpt), gpt.spec.description)
    Console(markup=False, highlight=False).print(table)


def show(
    ctx: typer.Context,
    gpt_id: Annotated[str, typer.Argument(metavar="ID", help="GPT id (its file name without .yaml)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show one GPT: what it is, its model and its instructions."""
    gpt = Store(ctx.obj.gpts_dir).get(gpt_id)
    info = summary(gpt) | {"instructions": gpt.instructions}
    if as_json:
        typer.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    typer.echo(f"{gpt.spec.avatar or ''} {gpt.spec.name}  ({gpt.id})".strip())
    if gpt.spec.description:
        typer.echo(gpt.spec.description)
    typer.echo(f"category: {gpt.spec.category}   model: {_model_label(gpt)}   file: {_display(gpt.path)}")
    if gpt.spec.tags:
        typer.echo(f"tags: {', '.join(gpt.spec.tags)}")
    for starter in gpt.spec.conversation_starters:
        typer.echo(f"  » {starter}")
    typer.echo("\n" + gpt.instructions)


def schema() -> None:
    """Print the JSON Schema of a spec file (for editor completion and checks)."""
    typer.echo(json.dumps(spec_json_schema(), indent=2))


def summary(gpt: LoadedSpec) -> dict[str, Any]:
    """The public facts of a GPT, as JSON-ready data."""
    spec = gpt.spec
    return {
        "id": gpt.id,
        "name": spec.name,
        "description": spec.description,
        "category": spec.category,
        "tags": list(spec.tags),
        "avatar": spec.avatar,
        "author": spec.author,
        "version": spec.version,
        "conversation_starters": list(spec.conversation_starters),
        "model": {"provider": spec.model.provider, "name": spec.model.name},
        "path": _display(gpt.path),
    }


def _model_label(gpt: LoadedSpec) -> str:
    model = gpt.spec.model
    return f"{model.provider}:{model.name}" if model.name else model.provider


def _spec_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.yaml")))
        else:
            files.append(path)  # a missing file is reported by load_spec
    return files


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
