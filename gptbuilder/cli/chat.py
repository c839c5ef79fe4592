"""`gptbuilder chat`: talk to a GPT from the terminal, interactively or in one shot."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Optional

import typer
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from ..agent import Agent
from ..errors import GPTBuilderError
from ..events import Citation, ConfirmationRequest, Curated, Done, Event, TextDelta, ToolCall, ToolResult
from ..store import Store

HELP = "commands: /reset starts over, /exit quits (Ctrl-D too); Ctrl-C stops an answer"
APPROVAL_HINT = "nothing was run: approvals need a conversation; ask in an interactive chat (gptbuilder chat {gpt})"


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
            "tool_steps": [e.to_dict() for e in events if isinstance(e, (ToolCall, ToolResult, ConfirmationRequest))],
        }
        curated = next((e for e in events if isinstance(e, Curated)), None)
        if curated:
            payload["curated"] = {"question": curated.question, "score": curated.score}
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
    events: list[Event] = []
    _print_stream(agent, message, options, events)
    if any(isinstance(e, ConfirmationRequest) for e in events):
        typer.echo(APPROVAL_HINT.format(gpt=agent.id), err=True)


def _print_stream(agent: Agent, messages: Any, options: dict[str, Any], seen: list[Event] | None = None) -> str:
    """Stream an answer to stdout; return the text (partial if interrupted); ``seen`` collects the events."""
    parts: list[str] = []
    sources: list[Citation] = []
    seen = [] if seen is None else seen
    events = agent.stream(messages, **options)
    try:
        for event in events:
            seen.append(event)
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
            elif isinstance(event, ConfirmationRequest):
                shown = json.dumps(event.arguments, ensure_ascii=False)
                typer.echo(f"[approval] {event.name}({shown}) needs your approval", err=True)
            elif isinstance(event, Curated):
                typer.echo(f"[curated] answer to {event.question!r} (similarity {event.score:.2f})", err=True)
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
    # LangChain messages, so a tool call waiting for approval (and its answer) survives into the next turn
    history: list[BaseMessage] = []
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
        turn: list[BaseMessage] = [*history, HumanMessage(line)]
        approvals: dict[str, bool] | None = None
        while True:
            typer.echo(f"{agent.loaded.spec.name}> ", nl=False)
            events: list[Event] = []
            try:
                answer = _print_stream(agent, turn, {**options, "approvals": approvals}, events)
            except GPTBuilderError as exc:
                typer.echo(f"error: {exc}", err=True)
                history = _record(turn, events, None) if approvals else history
                break
            asks = [e for e in events if isinstance(e, ConfirmationRequest)]
            if not asks:
                history = _record(turn, events, AIMessage(answer))
                break
            # The approval turn needs no new text from the user: the decision goes in as a short user
            # message (the agent wants the conversation to end with one) plus the approvals themselves.
            approvals = {ask.id: _ask_approval(ask) for ask in asks}
            history = [*_record(turn, events, None), _paused_message(answer, events)]
            turn = [*history, HumanMessage(_decision_text(asks, approvals))]


def _ask_approval(ask: ConfirmationRequest) -> bool:
    """y/yes approves; anything else, end of input included, denies."""
    try:
        reply = input(f"approve {ask.name}({json.dumps(ask.arguments, ensure_ascii=False)})? [y/N] ")
    except (EOFError, KeyboardInterrupt):
        typer.echo()
        return False
    return reply.strip().lower() in ("y", "yes")


def _decision_text(asks: list[ConfirmationRequest], approvals: dict[str, bool]) -> str:
    return "(" + "; ".join(f"{'approved' if approvals[a.id] else 'denied'} {a.name}" for a in asks) + ")"


def _paused_message(text: str, events: list[Event]) -> AIMessage:
    """The assistant step that waits for approval: every call it made that has no result yet."""
    answered = {e.id for e in events if isinstance(e, ToolResult)}
    calls = [
        {"name": e.name, "args": e.arguments, "id": e.id, "type": "tool_call"}
        for e in events
        if isinstance(e, (ToolCall, ConfirmationRequest)) and e.id not in answered
    ]
    return AIMessage(text, tool_calls=calls)


def _record(turn: list[BaseMessage], events: list[Event], answer: AIMessage | None) -> list[BaseMessage]:
    """The turn as history: results of calls left pending by the previous step go right after it, then the
    user's message, then the answer. Tool steps inside the answer itself are not kept (as before)."""
    pending: set[str] = set()
    for message in turn:
        if isinstance(message, AIMessage):
            pending |= {call["id"] for call in message.tool_calls}
        elif isinstance(message, ToolMessage):
            pending.discard(message.tool_call_id)
    results = [
        ToolMessage(e.content, tool_call_id=e.id, name=e.name, status="error" if e.error else "success")
        for e in events
        if isinstance(e, ToolResult) and e.id in pending
    ]
    recorded = [*turn[:-1], *results, turn[-1]]
    return [*recorded, answer] if answer is not None else recorded
