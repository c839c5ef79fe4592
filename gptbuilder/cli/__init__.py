"""The `gptbuilder` command line: one module per command group."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from ..errors import GPTBuilderError
from ..settings import Settings
from . import chat, doctor, importer, knowledge, specs, testing
from . import serve

class _Group(TyperGroup):
    """Translates gptbuilder errors into one line on stderr and exit status 1 (no traceback)."""

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except GPTBuilderError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Group,
    name="gptbuilder",
    help="Build, test and serve GPTs written as YAML specs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    ctx: typer.Context,
    gpts: Annotated[
        Optional[Path], typer.Option("--gpts", help="Folder of GPT specs [env GPTBUILDER_GPTS_DIR; default ./gpts]")
    ] = None,
    data: Annotated[
        Optional[Path],
        typer.Option("--data", help="Runtime data folder [env GPTBUILDER_DATA_DIR; default ./store/data]"),
    ] = None,
) -> None:
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)
    ctx.obj = Settings.from_env(gpts_dir=gpts, data_dir=data)


specs.register(app)
chat.register(app)
knowledge.register(app)
serve.register(app)
testing.register(app)
importer.register(app)
doctor.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
