"""Tool calls that wait for the user: asking for approval, and resolving the decision on the next turn."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from ..errors import InputError
from ..events import ConfirmationRequest, Done, Event, TextDelta, ToolCall, ToolResult
from .base import Turn

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

DECLINED = "The user declined to run {name}; it was not run."
UNANSWERED = "{name} was not run: it needs the user's approval and the user did not give it (treated as declined)."
NO_SUCH_TOOL = "{name} was not run: there is no such tool."
NOT_ISSUED = "{name} was not run: this server did not make that call in this conversation (or it expired)."
SHOWN_CHARS = 2000


def needing_confirmation(tools: Sequence[BaseTool]) -> frozenset[str]:
    """Names of the tools whose calls wait for the user's approval."""
    return frozenset(t.name for t in tools if (t.metadata or {}).get("requires_confirmation"))


class ResolveApprovals:
    """Stage: settle the tool calls the server paused for approval — run the approved ones, decline the rest.

    Only calls the server itself issued and holds (`turn.pending`, per owner and GPT) can run; their
    arguments are the ones the model gave, whatever the client sends back. A call that appears only in the
    conversation the client sent is history: it is answered "not run", never executed. Calls to tools that
    need no confirmation, held back with ones that do, run unless denied; a held call without a decision is
    declined. Results go right after the assistant message that made the calls, where the model APIs expect
    them. Calls of the caller's own tools (`turn.client_tools`, never named like one of the GPT's: the agent
    drops those) are the caller's to answer and are left alone; a call with a GPT tool's name is always
    the GPT's, whatever tools the caller sends.
    """

    def __init__(self, tools: Sequence[BaseTool]):
        self.tools = {tool.name: tool for tool in tools}
        self.needs_confirmation = needing_confirmation(tools)

    def __call__(self, turn: Turn) -> Generator[Event, None, Done | None]:
        from ..models.tool_calling import tool_name

        history, approvals = turn.history, turn.approvals
        answered = {m.tool_call_id for m in history if isinstance(m, ToolMessage)}
        callers = {tool_name(tool) for tool in turn.client_tools} - set(self.tools)
        shown = {
            str(call["id"]): (index, call)
            for index, message in enumerate(history)
            if isinstance(message, AIMessage)
            for call in message.tool_calls
            if call.get("id") and call["id"] not in answered and call["name"] not in callers
        }
        held = {call["id"]: call for call in turn.pending.take(turn.owner, turn.gpt_id, [*shown, *approvals])}
        unknown = [key for key in approvals if key not in held]
        if unknown:
            turn.pending.hold(turn.owner, turn.gpt_id, held.values())  # nothing was settled: keep them waiting
            waiting = ", ".join(f"{c['id']} ({c['name']})" for c in held.values()) or "none"
            raise InputError(
                f"approval for {', '.join(map(repr, unknown))} matches no pending tool call; pending calls: {waiting}"
            )
        replies: dict[str, ToolMessage] = {}
        for call_id, call in [*held.items(), *((i, c) for i, (_, c) in shown.items() if i not in held)]:
            if call_id not in held:
                replies[call_id] = _refusal(NOT_ISSUED, call)
                continue
            name, decision = call["name"], approvals.get(call_id)
            if decision is True or (decision is None and name not in self.needs_confirmation and name in self.tools):
                yield ToolCall(call_id, name, dict(call["args"]))
                replies[call_id] = invoke_tool(self.tools.get(name), call)
            elif decision is False or approvals:
                replies[call_id] = _refusal(DECLINED, call)
            else:
                replies[call_id] = _refusal(UNANSWERED if name in self.needs_confirmation else NO_SUCH_TOOL, call)
            reply = replies[call_id]
            yield ToolResult(call_id, name, clip(reply.text), reply.status == "error")
        if replies:
            turn.history = _with_replies(history, replies, [held[i] for i in held if i not in shown])
        return None


def _with_replies(history: list[BaseMessage], replies: dict[str, ToolMessage], unshown: list[Mapping[str, Any]]) -> list[BaseMessage]:
    """The history with each reply after the message that made its call; held calls the client left out
    (with their replies) go just before the user's last message."""
    out: list[BaseMessage] = []
    for message in history:
        out.append(message)
        if isinstance(message, AIMessage):
            out.extend(replies[str(c["id"])] for c in message.tool_calls if c.get("id") in replies)
    if unshown:
        last = max(i for i, m in enumerate(out) if isinstance(m, HumanMessage))
        step = [AIMessage("", tool_calls=[{**c, "type": "tool_call"} for c in unshown]), *(replies[c["id"]] for c in unshown)]
        out[last:last] = step
    return out


def invoke_tool(tool: BaseTool | None, call: Mapping[str, Any]) -> ToolMessage:
    """Run one tool call as the agent's tools node would: failures become an error message for the model."""
    if tool is None:
        return _refusal(NO_SUCH_TOOL, call)
    try:
        result = tool.invoke({**call, "type": "tool_call"})
    except Exception as exc:  # a tool's own failure goes back to the model, never to the user
        return ToolMessage(f"{call['name']} failed: {exc}", tool_call_id=call["id"], name=call["name"], status="error")
    if isinstance(result, ToolMessage):
        return result
    return ToolMessage(str(result), tool_call_id=call["id"], name=call["name"])  # pragma: no cover


def confirmation_events(message: AIMessage, needs_confirmation: frozenset[str]) -> Iterator[Event]:
    """A paused step: what waits for approval, what is held with it, and a question for the user."""
    asks: list[str] = []
    for call in message.tool_calls:
        if call["name"] in needs_confirmation:
            yield ConfirmationRequest(str(call["id"]), call["name"], dict(call["args"]))
            shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in call["args"].items())
            asks.append(f"{call['name']}({shown})")
        else:
            yield ToolCall(str(call["id"]), call["name"], dict(call["args"]))  # held: runs with the decision
    separator = "\n\n" if message.text.strip() else ""
    verb = "needs" if len(asks) == 1 else "need"
    yield TextDelta(f"{separator}{' and '.join(asks)} {verb} your approval: approve or deny it.")


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """Tool output as shown in events: the model got the full (budgeted) text, people get a glimpse."""
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit:,} more characters]"


def _refusal(template: str, call: Mapping[str, Any]) -> ToolMessage:
    name = call["name"]
    return ToolMessage(template.format(name=name), tool_call_id=call["id"], name=name, status="error")
