"""The `gptbuilder` command line: one module per command group."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import GPTBuilderError, UnknownGPTError
from ..settings import Settings
from . import chat, doctor, importer, knowledge, mcp, serve, specs, testing, training
from .progress import PROGRESS_KEY, command_progress, progress_of


class _Group(TyperGroup):
    """Translates gptbuilder errors into one line on stderr and exit status 1 (no traceback)."""

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except GPTBuilderError as exc:
            progress_of(ctx).close()  # bars first, so the message is not drawn over
            typer.echo(f"error: {exc}", err=True)
            if isinstance(exc, UnknownGPTError) and isinstance(ctx.obj, Settings):
                typer.echo(ctx.obj.where_gpts(), err=True)  # outside the repository the folder is the surprise
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Group,
    name="gptbuilder",
    help="Build, test and serve GPTs written as YAML specs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,  # rich markup would swallow the "[default: ...]" parts of option help
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gptbuilder {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    gpts: Annotated[
        Path | None, typer.Option("--gpts", help="Folder of GPT specs [env GPTBUILDER_GPTS_DIR; default ./gpts]")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Runtime data folder [env GPTBUILDER_DATA_DIR; default ./store/data]"),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)
    ctx.obj = Settings.from_env(gpts_dir=gpts, data_dir=data)
    # serve indexes in request threads, where live bars would collide; its log says what happens instead
    ctx.meta[PROGRESS_KEY] = ctx.with_resource(command_progress(index=ctx.invoked_subcommand != "serve"))


specs.register(app)
chat.register(app)
knowledge.register(app)
serve.register(app)
mcp.register(app)
testing.register(app)
importer.register(app)
doctor.register(app)
training.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
