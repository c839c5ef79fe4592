"""The agent's tool loop: scripted on the fake model, against the real demo orders service, and on the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gptbuilder.agent import compile_agent
from gptbuilder.events import Done, TextDelta, ToolCall, ToolResult
from gptbuilder.spec import load_spec
from tests.tools.test_actions import Service, orders_service

REPO = Path(__file__).resolve().parents[1]


def call(name: str, **arguments) -> str:
    return json.dumps({"type": "tool_call", "name": name, "arguments": arguments})


def agent_for(write_spec, gpts_dir, replies: list[str], tools: str, extra: str = ""):
    text = (
        "name: Acme\ninstructions: Use the tools.\nallow_private_network: true\n"
        f"model:\n  provider: fake\n  options:\n    replies: {json.dumps(replies)}\ntools:\n{tools}{extra}"
    )
    return compile_agent(load_spec(write_spec("acme", text)))


@pytest.fixture
def orders(gpts_dir):
    service = Service(orders_service.create_app())
    doc = (REPO / "gpts" / "actions" / "orders.openapi.yaml").read_text(encoding="utf-8")
    (gpts_dir / "actions").mkdir()
    (gpts_dir / "actions" / "orders.openapi.yaml").write_text(doc.replace("http://127.0.0.1:8765", service.url), encoding="utf-8")
    yield service
    service.stop()


ORDERS_TOOL = "  - action: {openapi: actions/orders.openapi.yaml}\n"


def test_scripted_order_lookup_runs_the_real_action(write_spec, gpts_dir, orders):
    agent = agent_for(write_spec, gpts_dir, [call("getOrder", order_id="A1001"), "Your order A1001 has shipped."], ORDERS_TOOL)
    events = list(agent.stream("Where is my order A1001?"))
    kinds = [type(e) for e in events]
    assert kinds.index(ToolCall) < kinds.index(ToolResult) < kinds.index(TextDelta)
    tool_call = next(e for e in events if isinstance(e, ToolCall))
    result = next(e for e in events if isinstance(e, ToolResult))
    assert (tool_call.name, tool_call.arguments) == ("getOrder", {"order_id": "A1001"})
    assert result.name == "getOrder" and not result.error and "shipped" in result.content
    assert "/orders/A1001" in orders.raw_paths
    assert events[-1].text == "Your order A1001 has shipped."


def test_tool_errors_and_invented_tools_go_back_to_the_model(write_spec, gpts_dir, orders):
    replies = [call("getOrder", order_id="../admin"), call("launchRocket"), "Sorry, I could not find it."]
    agent = agent_for(write_spec, gpts_dir, replies, ORDERS_TOOL)
    events = list(agent.stream("Where is my order?"))
    results = [e for e in events if isinstance(e, ToolResult)]
    assert [r.error for r in results] == [True, True]
    assert "404" in results[0].content and "launchRocket" in results[1].content
    assert "/orders/..%2Fadmin" in orders.raw_paths and "/admin" not in orders.raw_paths
    assert events[-1].text == "Sorry, I could not find it."


def test_cancelling_needs_approval_and_is_not_run(write_spec, gpts_dir, orders):
    agent = agent_for(write_spec, gpts_dir, [call("cancelOrder", order_id="A1002"), "I cannot cancel it here."], ORDERS_TOOL)
    events = list(agent.stream("Cancel A1002"))
    result = next(e for e in events if isinstance(e, ToolResult))
    assert result.error and "approval" in result.content
    assert not any("cancel" in path for path in orders.raw_paths)


def test_max_tool_calls_stops_a_looping_model(write_spec, gpts_dir):
    replies = [call("calculator", expression="1+1")] * 5 + ["Done looping."]
    agent = agent_for(write_spec, gpts_dir, replies, "  - calculator\n", extra="max_tool_calls: 2\n")
    events = list(agent.stream("add forever"))
    ran = [e for e in events if isinstance(e, ToolResult) and not e.error]
    assert len(ran) == 2
    assert isinstance(events[-1], Done)


def test_the_real_embedded_model_calls_the_calculator_and_answers_from_it(write_spec):
    path = write_spec(
        "calc",
        "name: Calc\ninstructions: You are a helpful assistant. Use the calculator for arithmetic.\n"
        "tools: [calculator, current_time]\nmodel: {max_tokens: 150}\n",
    )
    events = list(compile_agent(load_spec(path)).stream("What is 12 times 7?"))
    calls = [e for e in events if isinstance(e, ToolCall)]
    results = [e for e in events if isinstance(e, ToolResult)]
    assert calls and calls[0].name == "calculator"
    assert results[0].content == "84"
    assert "84" in events[-1].text
