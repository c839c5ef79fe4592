"""`gptbuilder mcp`: one GPT as an MCP server over stdin/stdout, for desktop clients (Claude Desktop, Cursor…)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..store import Store


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("mcp")(mcp)


def mcp(
    ctx: typer.Context,
    gpt_id: Annotated[str, typer.Argument(metavar="ID", help="GPT id (its file name without .yaml)")],
) -> None:
    """Serve one GPT as the MCP tool ask_<ID> over stdio; an MCP client starts this command itself.

    stdout carries the protocol alone (anything else printed goes to stderr). Over HTTP, `gptbuilder serve`
    offers every GPT the same way at /mcp, behind its API keys.
    """
    import anyio

    from ..server.mcp import serve_stdio

    anyio.run(serve_stdio, Store(ctx.obj.gpts_dir, data_dir=ctx.obj.data_dir), gpt_id)
