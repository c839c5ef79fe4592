"""`gptbuilder chat`: talk to a GPT from the terminal, interactively or in one shot."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from ..agent import Agent
from ..errors import GPTBuilderError
from ..events import ConfirmationRequest, Curated, Event, Moderated, TextDelta, ToolCall, ToolResult, Transcript
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
        str | None, typer.Option("--message", "-m", help="Ask one question and exit ('-' reads stdin)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With -m: print the reply as JSON")] = False,
    temperature: Annotated[float | None, typer.Option(min=0, max=2, help="Override the spec's temperature")] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Most tokens in the answer")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed, for repeatable answers")] = None,
) -> None:
    """Chat with a GPT: streaming and interactive, or one shot with -m."""
    agent = Store(ctx.obj.gpts_dir, data_dir=ctx.obj.data_dir).agent(gpt_id)
    options: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}
    if message is None:
        if as_json:
            raise typer.BadParameter("--json needs -m/--message")
        _interactive(agent, options)
        return
    if message == "-":
        message = sys.stdin.read()
    if as_json:
        transcript = Transcript.from_events(agent.stream(message, **options))
        payload: dict[str, Any] = {
            "gpt": agent.id,
            "text": transcript.text,
            "finish_reason": transcript.finish_reason,
            "usage": transcript.usage.to_dict(),
            "citations": [c.to_dict() for c in transcript.citations],
            "tool_steps": [step.to_dict() for step in transcript.steps],
        }
        if transcript.curated:
            payload["curated"] = {"question": transcript.curated.question, "score": transcript.curated.score}
        if transcript.grounding:
            payload["grounding"] = transcript.grounding.to_dict()
        if transcript.moderations:
            payload["moderation"] = [m.to_dict() for m in transcript.moderations]
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
    transcript = _print_stream(agent, message, options)
    if transcript.confirmations:
        typer.echo(APPROVAL_HINT.format(gpt=agent.id), err=True)


def _print_stream(agent: Agent, messages: Any, options: dict[str, Any], transcript: Transcript | None = None) -> Transcript:
    """Stream an answer to stdout (tool steps on stderr) into ``transcript``; return it (partial if interrupted)."""
    transcript = Transcript() if transcript is None else transcript
    events = agent.stream(messages, **options)
    try:
        for event in events:
            transcript.add(event)
            _show(event)
    except KeyboardInterrupt:
        events.close()
        typer.echo(" [stopped]", nl=False)
    typer.echo()
    if transcript.citations:
        typer.echo("sources:")
        for source in transcript.citations:
            where = source.locator.get("page") or " > ".join(source.locator.get("headings", []))
            mark = "*" if source.cited else " "
            typer.echo(f" {mark}[{source.number}] {source.source}{f' ({where})' if where else ''}")
    for change in transcript.grounding.changes if transcript.grounding else ():  # what the sources did not support
        typer.echo(f"[checked] {change['action']}: {change['sentence'] or '(the whole answer)'}", err=True)
    return transcript


def _show(event: Event) -> None:
    """How the terminal shows one event as it arrives: text on stdout, tool steps on stderr."""
    match event:
        case TextDelta():
            typer.echo(event.text, nl=False)
            sys.stdout.flush()
        case ToolCall():
            typer.echo(f"[tool] {event.name}({json.dumps(event.arguments, ensure_ascii=False)})", err=True)
        case ToolResult():
            status = "failed" if event.error else "returned"
            typer.echo(f"[tool] {event.name} {status}: {' '.join(event.content.split())[:200]}", err=True)
        case ConfirmationRequest():
            shown = json.dumps(event.arguments, ensure_ascii=False)
            typer.echo(f"[approval] {event.name}({shown}) needs your approval", err=True)
        case Curated():
            typer.echo(f"[curated] answer to {event.question!r} (similarity {event.score:.2f})", err=True)
        case Moderated():
            typer.echo(f"[moderated] {event.side} {event.action} by {event.check} ({event.category})", err=True)


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
            transcript = Transcript()
            try:
                _print_stream(agent, turn, {**options, "approvals": approvals}, transcript)
            except GPTBuilderError as exc:
                typer.echo(f"error: {exc}", err=True)
                history = _record(turn, transcript, None) if approvals else history
                break
            asks = transcript.confirmations
            if not asks:
                history = _record(turn, transcript, AIMessage(transcript.text))
                break
            # The approval turn needs no new text from the user: the decision goes in as a short user
            # message (the agent wants the conversation to end with one) plus the approvals themselves.
            approvals = {ask.id: _ask_approval(ask) for ask in asks}
            history = [*_record(turn, transcript, None), _paused_message(transcript)]
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


def _paused_message(transcript: Transcript) -> AIMessage:
    """The assistant step that waits for approval: every call it made that has no result yet."""
    calls = [{"name": c.name, "args": c.arguments, "id": c.id, "type": "tool_call"} for c in transcript.pending_calls()]
    return AIMessage(transcript.text, tool_calls=calls)


def _record(turn: list[BaseMessage], transcript: Transcript, answer: AIMessage | None) -> list[BaseMessage]:
    """The turn as history: results of calls left pending by the previous step go right after it, then the
    user's message, then the answer. Tool steps inside the answer itself are not kept (as before)."""
    pending: set[str] = set()
    for message in turn:
        if isinstance(message, AIMessage):
            pending |= {call["id"] for call in message.tool_calls if call["id"]}
        elif isinstance(message, ToolMessage):
            pending.discard(message.tool_call_id)
    results = [
        ToolMessage(r.content, tool_call_id=r.id, name=r.name, status="error" if r.error else "success")
        for r in transcript.tool_results
        if r.id in pending
    ]
    recorded = [*turn[:-1], *results, turn[-1]]
    return [*recorded, answer] if answer is not None else recorded
