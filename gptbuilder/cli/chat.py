"""`gptbuilder chat`: talk to a GPT from the terminal, interactively or in one shot."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Optional

import typer

from ..agent import Agent
from ..errors import GPTBuilderError
from ..events import Citation, Done, TextDelta, ToolCall, ToolResult
from ..store import Store

HELP = "commands: /reset starts over, /exit quits (Ctrl-D too); Ctrl-C stops an answer"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("chat")(chat)


def chat(
    ctx: typer.Context,
    gpt_id: Annotated[str, typer.Argument(metavar="ID", help="GPT id (its file name without .yaml)")],
    message: Annotated[
        Optional[str], typer.Option("--message", "-m", help="Ask one question and exit ('-' reads stdin)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With -m: print the reply as JSON")] = False,
    temperature: Annotated[Optional[float], typer.Option(min=0, max=2, help="Override the spec's temperature")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(min=1, help="Most tokens in the answer")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed, for repeatable answers")] = None,
) -> None:
    """Chat with a GPT: streaming and interactive, or one shot with -m."""
    agent = Store(ctx.obj.gpts_dir, data_dir=ctx.obj.data_dir).agent(gpt_id)
    options = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}
    if message is None:
        if as_json:
            raise typer.BadParameter("--json needs -m/--message")
        _interactive(agent, options)
        return
    if message == "-":
        message = sys.stdin.read()
    if as_json:
        events = list(agent.stream(message, **options))
        done = next(e for e in events if isinstance(e, Done))
        payload = {
            "gpt": agent.id,
            "text": done.text,
            "finish_reason": done.finish_reason,
            "usage": done.usage.to_dict(),
            "citations": [e.to_dict() for e in events if isinstance(e, Citation)],
            "tool_steps": [e.to_dict() for e in events if isinstance(e, (ToolCall, ToolResult))],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
    _print_stream(agent, message, options)


def _print_stream(agent: Agent, messages: Any, options: dict[str, Any]) -> str:
    """Stream an answer to stdout; return the text (partial if interrupted)."""
    parts: list[str] = []
    sources: list[Citation] = []
    events = agent.stream(messages, **options)
    try:
        for event in events:
            if isinstance(event, TextDelta):
                parts.append(event.text)
                typer.echo(event.text, nl=False)
                sys.stdout.flush()
            elif isinstance(event, Citation):
                sources.append(event)
            elif isinstance(event, ToolCall):
                typer.echo(f"[tool] {event.name}({json.dumps(event.arguments, ensure_ascii=False)})", err=True)
            elif isinstance(event, ToolResult):
                status = "failed" if event.error else "returned"
                typer.echo(f"[tool] {event.name} {status}: {' '.join(event.content.split())[:200]}", err=True)
    except KeyboardInterrupt:
        events.close()
        typer.echo(" [stopped]", nl=False)
    typer.echo()
    if sources:
        typer.echo("sources:")
        for source in sources:
            where = source.locator.get("page") or " > ".join(source.locator.get("headings", []))
            mark = "*" if source.cited else " "
            typer.echo(f" {mark}[{source.number}] {source.source}{f' ({where})' if where else ''}")
    return "".join(parts)


def _interactive(agent: Agent, options: dict[str, Any]) -> None:
    spec = agent.loaded.spec
    typer.echo(f"{spec.avatar or ''} {spec.name}".strip() + (f" — {spec.description}" if spec.description else ""))
    for starter in spec.conversation_starters:
        typer.echo(f"  » {starter}")
    typer.echo(HELP)
    history: list[dict[str, str]] = []
    while True:
        try:
            line = input("\nyou> ")
        except (EOFError, KeyboardInterrupt):
            typer.echo()
            return
        command = line.strip()
        if command in ("/exit", "/quit"):
            return
        if command == "/reset":
            history.clear()
            typer.echo("(new conversation)")
            continue
        if command in ("/help", "/?"):
            typer.echo(HELP)
            continue
        turn = [*history, {"role": "user", "content": line}]
        typer.echo(f"{agent.loaded.spec.name}> ", nl=False)
        try:
            answer = _print_stream(agent, turn, options)
        except GPTBuilderError as exc:
            typer.echo(f"error: {exc}", err=True)
            continue
        history = [*turn, {"role": "assistant", "content": answer}]
