"""`validate`, `list`, `show` and `schema`: inspect GPT specs without loading any model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..catalog import load_catalog
from ..errors import SpecError, SpecProblem
from ..settings import Settings
from ..spec import LoadedSpec, load_spec, spec_json_schema
from ..store import Store


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("validate")(validate)
    app.command("list")(list_gpts)
    app.command("show")(show)
    app.command("schema")(schema)


def validate(
    ctx: typer.Context,
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Spec files or folders [default: the GPTs dir]")] = None,
) -> None:
    """Check spec files and print every problem; exit 1 if any."""
    settings: Settings = ctx.obj
    files = _spec_files(paths or [settings.gpts_dir])
    if not files:
        typer.echo(f"error: no spec files (*.yaml) in {', '.join(map(str, paths or [settings.gpts_dir]))}", err=True)
        raise typer.Exit(1)
    bad = 0
    for file in files:
        try:
            loaded = load_spec(file, display=_display(file))
        except SpecError as exc:
            bad += 1
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
        else:
            typer.echo(f"ok  {_display(file)}  ({loaded.id})")
    typer.echo(f"{len(files) - bad} valid, {bad} invalid", err=bool(bad))
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
        typer.echo(f"no GPTs in {ctx.obj.gpts_dir}", err=True)
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
