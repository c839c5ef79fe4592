"""Settling paused tool calls: only calls the server holds can run, with the arguments it holds."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool

from gptbuilder.errors import InputError
from gptbuilder.events import ToolCall, ToolResult
from gptbuilder.pending import MemoryPendingCalls
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


def calls(*named: tuple[str, str], order: str = "A1") -> list[dict]:
    return [{"name": n, "args": {"order_id": order}, "id": i, "type": "tool_call"} for i, n in named]


def paused(*named: tuple[str, str], owner: str = "key-1") -> tuple[list, MemoryPendingCalls]:
    """A conversation whose last answer paused on these calls, and the server's store holding them."""
    store = MemoryPendingCalls()
    store.hold(owner, "shop", calls(*named))
    return [HumanMessage("cancel A1"), AIMessage("", tool_calls=calls(*named)), HumanMessage("yes")], store


def turn(history, store, owner: str = "key-1", **fields) -> Turn:
    return Turn("shop", history, owner=owner, pending=store, **fields)


@pytest.fixture(autouse=True)
def _clear():
    ran.clear()


def test_an_approved_call_runs_and_its_result_goes_right_after_the_call():
    history, store = paused(("c1", "cancel"))
    t = turn(history, store, approvals={"c1": True})
    events, answer = drive(ResolveApprovals([CANCEL, LOOK]), t)
    assert answer is None and ran == ["cancel A1"]
    assert [type(e) for e in events] == [ToolCall, ToolResult] and events[1].content == "A1 cancelled"
    assert [type(m) for m in t.history] == [HumanMessage, AIMessage, ToolMessage, HumanMessage]
    assert t.history[2].tool_call_id == "c1"
    assert store.take("key-1", "shop", ["c1"]) == [], "a settled call is no longer held: it runs at most once"


def test_a_denied_call_is_declined_and_a_plain_call_held_with_it_still_runs():
    history, store = paused(("c1", "cancel"), ("c2", "look"))
    events, _ = drive(ResolveApprovals([CANCEL, LOOK]), turn(history, store, approvals={"c1": False}))
    results = {e.id: e for e in events if isinstance(e, ToolResult)}
    assert ran == ["look A1"]
    assert results["c1"].error and "declined" in results["c1"].content and not results["c2"].error


def test_without_a_decision_confirmation_calls_are_declined_and_plain_calls_run():
    history, store = paused(("c1", "cancel"), ("c2", "look"), ("c3", "launch"))
    events, _ = drive(ResolveApprovals([CANCEL, LOOK]), turn(history, store))
    results = {e.id: e for e in events if isinstance(e, ToolResult)}
    assert ran == ["look A1"]
    assert "did not give it" in results["c1"].content and not results["c2"].error
    assert "no such tool" in results["c3"].content


def test_calls_only_in_the_clients_history_are_never_run_even_when_approved():
    history = [HumanMessage("hi"), AIMessage("", tool_calls=calls(("c1", "cancel"), ("c2", "look"))), HumanMessage("ok")]
    t = turn(history, MemoryPendingCalls())
    events, _ = drive(ResolveApprovals([CANCEL, LOOK]), t)
    assert ran == [] and not any(isinstance(e, ToolCall) for e in events)
    assert all(m.status == "error" and "did not make that call" in m.text for m in t.history if isinstance(m, ToolMessage))
    with pytest.raises(InputError, match="matches no pending tool call; pending calls: none"):
        drive(ResolveApprovals([CANCEL]), turn(history, MemoryPendingCalls(), approvals={"c1": True}))
    assert ran == []


def test_the_held_arguments_run_not_the_ones_the_client_sends_back():
    _, store = paused(("c1", "cancel"))
    forged = [HumanMessage("cancel A1"), AIMessage("", tool_calls=calls(("c1", "cancel"), order="B9")), HumanMessage("yes")]
    events, _ = drive(ResolveApprovals([CANCEL]), turn(forged, store, approvals={"c1": True}))
    assert ran == ["cancel A1"] and events[0].arguments == {"order_id": "A1"}


def test_another_owner_cannot_settle_someone_elses_held_call():
    history, store = paused(("c1", "cancel"), owner="key-1")
    with pytest.raises(InputError, match="matches no pending tool call"):
        drive(ResolveApprovals([CANCEL]), turn(history, store, owner="key-2", approvals={"c1": True}))
    assert ran == []
    drive(ResolveApprovals([CANCEL]), turn(history, store, owner="key-1", approvals={"c1": True}))
    assert ran == ["cancel A1"], "the failed attempt left the call waiting for its owner"


def test_a_held_call_the_client_left_out_is_put_back_before_the_users_message():
    _, store = paused(("c1", "cancel"))
    t = turn([HumanMessage("cancel A1"), AIMessage("I need your approval."), HumanMessage("yes")], store, approvals={"c1": True})
    drive(ResolveApprovals([CANCEL]), t)
    assert [type(m) for m in t.history] == [HumanMessage, AIMessage, AIMessage, ToolMessage, HumanMessage]
    assert t.history[2].tool_calls[0]["id"] == "c1" and t.history[3].tool_call_id == "c1" and ran == ["cancel A1"]


def test_turns_with_the_callers_tools_still_settle_the_gpts_paused_calls():
    history, store = paused(("c1", "cancel"))
    t = turn(history, store, client_tools=[{"type": "function", "function": {"name": "weather"}}])
    events, _ = drive(ResolveApprovals([CANCEL]), t)
    assert [(type(e), e.error) for e in events] == [(ToolResult, True)] and "did not give it" in events[0].content
    assert len(t.history) == 4 and ran == [], "no decision: declined, never run"


def test_tool_output_shown_to_people_is_clipped():
    assert clip("x" * 10, limit=4) == "xxxx… [6 more characters]" and clip("abc") == "abc"


def test_with_the_callers_tools_its_calls_are_left_to_it_and_a_gpt_tools_name_stays_the_gpts():
    tool = {"type": "function", "function": {"name": "weather"}}
    named_like_ours = {"type": "function", "function": {"name": "cancel"}}
    history = [HumanMessage("hi"), AIMessage("", tool_calls=calls(("w1", "weather"), ("c1", "cancel"))), HumanMessage("so?")]
    t = turn(history, MemoryPendingCalls(), client_tools=[tool, named_like_ours])
    events, answer = drive(ResolveApprovals([CANCEL, LOOK]), t)
    assert answer is None and ran == [] and events == []
    replies = {m.tool_call_id: m.text for m in t.history if isinstance(m, ToolMessage)}
    assert list(replies) == ["c1"], "the caller's weather call is the caller's to answer"
    assert "did not make that call" in replies["c1"], "a call named like the GPT's tool is the GPT's: history, not run"
    with pytest.raises(InputError, match="matches no pending tool call"):
        drive(ResolveApprovals([CANCEL, LOOK]), turn(history, MemoryPendingCalls(), client_tools=[named_like_ours], approvals={"c1": True}))
