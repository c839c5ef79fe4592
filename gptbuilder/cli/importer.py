"""`gptbuilder import`: convert an OpenAI GPT/Assistant export or a Dify chatbot DSL file into a spec."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer

from ..errors import GPTBuilderError
from ..importer import FORMAT_NAMES, ImportResult, Written, convert, write
from ..settings import Settings


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("import")(import_file)


def import_file(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="OpenAI GPT/Assistant JSON export or Dify DSL YAML")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Spec file to write [default: GPTS/<id-from-name>.yaml]")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write even when parts cannot be mapped, and replace existing files (each is named)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Convert another platform's GPT into a spec, reporting every field it could not map."""
    settings: Settings = ctx.obj
    result = convert(file)
    target = out or settings.gpts_dir / f"{result.gpt_id}.yaml"
    error: GPTBuilderError | None = None
    written = Written([])
    try:
        written = write(result, target, source=file.name, force=force)
    except GPTBuilderError as exc:
        error = exc
    if as_json:
        typer.echo(json.dumps(_report(result, written, error), indent=2, ensure_ascii=False))
    else:
        _print(result, written)
    if error is not None:
        raise error


def _report(result: ImportResult, written: Written, error: GPTBuilderError | None) -> dict:
    return {
        "format": result.format,
        "id": result.gpt_id,
        "written": [str(p) for p in written.paths],
        "replaced": [str(p) for p in written.replaced],
        "error": str(error) if error else None,
        "lost": [u.to_dict() for u in result.lost],
        "ignored": [u.to_dict() for u in result.unmapped if not u.lost],
    }


def _print(result: ImportResult, written: Written) -> None:
    typer.echo(f"{FORMAT_NAMES[result.format]}: {result.spec['name']} ({result.gpt_id})")
    if result.lost:
        typer.echo("not mapped — the imported GPT lacks these:")
        for item in result.lost:
            typer.echo(f"  {item.field}: {item.reason}")
    ignored = [u for u in result.unmapped if not u.lost]
    if ignored:
        typer.echo("ignored: " + ", ".join(u.field if "metadata" in u.reason else f"{u.field} ({u.reason})" for u in ignored))
    for path in written.paths:
        typer.echo(f"{'replaced' if path in written.replaced else 'wrote'} {path}")
    if written.paths:
        typer.echo("next: " + next_command(written.paths[0]))


def next_command(spec: Path) -> str:
    """The commands that validate and chat with a written spec, runnable from the current directory."""
    same = spec.parent.resolve() == Settings.from_env().gpts_dir.resolve()  # the folder a plain command sees
    where = "" if same else f"--gpts {shlex.quote(str(spec.parent))} "
    return f"gptbuilder validate {shlex.quote(str(spec))} && gptbuilder {where}chat {spec.stem}"
