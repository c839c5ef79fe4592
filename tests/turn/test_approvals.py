"""Resolving pending tool calls: approved ones run, declined and unanswered ones are told so, in place."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool

from gptbuilder.errors import InputError
from gptbuilder.events import ToolCall, ToolResult
from gptbuilder.turn import Turn
from gptbuilder.turn.approvals import ResolveApprovals, clip
from tests.turn.test_guards import drive

ran: list[str] = []


def _cancel(order_id: str) -> str:
    ran.append(f"cancel {order_id}")
    return f"{order_id} cancelled"


def _look(order_id: str) -> str:
    ran.append(f"look {order_id}")
    return f"{order_id} shipped"


CANCEL = StructuredTool.from_function(_cancel, name="cancel", description="Cancel.", metadata={"requires_confirmation": True})
LOOK = StructuredTool.from_function(_look, name="look", description="Look up.")


def pending(*calls: tuple[str, str]) -> list:
    message = AIMessage("", tool_calls=[{"name": n, "args": {"order_id": "A1"}, "id": i, "type": "tool_call"} for i, n in calls])
    return [HumanMessage("cancel A1"), message, HumanMessage("yes")]


@pytest.fixture(autouse=True)
def _clear():
    ran.clear()


def test_an_approved_call_runs_and_its_result_goes_right_after_the_call():
    t = Turn("shop", pending(("c1", "cancel")), approvals={"c1": True})
    events, answer = drive(ResolveApprovals([CANCEL, LOOK]), t)
    assert answer is None and ran == ["cancel A1"]
    assert [type(e) for e in events] == [ToolCall, ToolResult] and events[1].content == "A1 cancelled"
    assert [type(m) for m in t.history] == [HumanMessage, AIMessage, ToolMessage, HumanMessage]
    assert t.history[2].tool_call_id == "c1"


def test_a_denied_call_is_declined_and_a_plain_call_held_with_it_still_runs():
    t = Turn("shop", pending(("c1", "cancel"), ("c2", "look")), approvals={"c1": False})
    events, _ = drive(ResolveApprovals([CANCEL, LOOK]), t)
    results = {e.id: e for e in events if isinstance(e, ToolResult)}
    assert ran == ["look A1"]
    assert results["c1"].error and "declined" in results["c1"].content and not results["c2"].error


def test_without_a_decision_confirmation_calls_are_declined_and_plain_calls_run():
    t = Turn("shop", pending(("c1", "cancel"), ("c2", "look"), ("c3", "launch")))
    events, _ = drive(ResolveApprovals([CANCEL, LOOK]), t)
    results = {e.id: e for e in events if isinstance(e, ToolResult)}
    assert ran == ["look A1"]
    assert "did not give it" in results["c1"].content and not results["c2"].error
    assert "no such tool" in results["c3"].content


def test_an_approval_for_no_pending_call_is_an_input_error():
    with pytest.raises(InputError, match="matches no pending tool call; pending calls: c1 \\(cancel\\)"):
        drive(ResolveApprovals([CANCEL]), Turn("shop", pending(("c1", "cancel")), approvals={"zz": True}))


def test_turns_with_the_callers_tools_leave_pending_calls_to_the_caller():
    t = Turn("shop", pending(("c1", "cancel")), approvals={}, client_tools=[{"type": "function"}])
    assert drive(ResolveApprovals([CANCEL]), t) == ([], None) and len(t.history) == 3 and ran == []


def test_tool_output_shown_to_people_is_clipped():
    assert clip("x" * 10, limit=4) == "xxxx… [6 more characters]" and clip("abc") == "abc"
