"""The tool router: picks a tool or an answer by meaning, before a small model decodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from gptbuilder.models.options import option_problems
from gptbuilder.models.registry import get_provider
from gptbuilder.models.tool_calling import openai_tools, plan_turn
from gptbuilder.models.tool_routing import ROUTING_OPTIONS, ToolRouter, routed_choice, tool_text
from gptbuilder.spec import ModelConfig


@tool
def get_order(order_id: str) -> str:
    """Look up a shop order by its id and return its status."""
    return order_id


@tool
def convert_currency(amount: float, from_currency: str, to_currency: str) -> float:
    """Convert an amount of money from one currency to another."""
    return amount


TOOLS = openai_tools([get_order, convert_currency])


def keyword_embed(texts):
    """Two-dimensional 'embeddings': how much a text is about orders vs. money."""
    return [[float("order" in t.lower()), float("currenc" in t.lower() or "eur" in t.lower())] for t in texts]


def test_tool_text_names_the_tool_and_its_arguments():
    text = tool_text(TOOLS[1])
    assert text.startswith("convert currency. Convert an amount")
    assert "from currency" in text and "to currency" in text
    camel = {"function": {"name": "getOrderStatus", "parameters": {"properties": {"orderId": {"description": "The id."}}}}}
    assert tool_text(camel) == "get order status. order id: The id."


def test_router_picks_the_closest_tool_above_the_threshold_and_caches_tool_vectors():
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return keyword_embed(texts)

    router = ToolRouter(embed)
    assert router.route(TOOLS, "where is my order?").tool == "get_order"
    assert router.route(TOOLS, "100 USD in EUR please").tool == "convert_currency"
    assert router.route(TOOLS, "hello there").tool is None
    assert router.route(TOOLS, "   ").tool is None
    assert sum(len(c) for c in calls) == 2 + 3, "tools embedded once, then one query per route"


def test_threshold_decides_between_a_call_and_an_answer():
    router = ToolRouter(lambda texts: [[1.0, 1.0] if "order" in t else [1.0, 0.0] for t in texts])
    assert router.route(TOOLS[:1], "x", threshold=0.7).tool == "get_order"  # cosine 0.707
    assert router.route(TOOLS[:1], "x", threshold=0.8).tool is None


def test_routed_choice_respects_explicit_choices_and_tool_results():
    router = ToolRouter(keyword_embed)
    ask = [SystemMessage("s"), HumanMessage("where is my order A1?")]
    assert routed_choice(TOOLS, ask, None, router=router) == {"type": "function", "function": {"name": "get_order"}}
    assert routed_choice(TOOLS, [HumanMessage("hi")], "auto", router=router) == "none"
    assert routed_choice(TOOLS, ask, "required", router=router) == "required"
    assert routed_choice(TOOLS, ask, None, mode="model", router=router) is None
    after_call = [*ask, AIMessage("", tool_calls=[{"name": "get_order", "args": {}, "id": "1"}]), ToolMessage("ok", tool_call_id="1")]
    assert routed_choice(TOOLS, after_call, None, router=router) is None, "only fresh requests are routed"


def test_plan_turn_decodes_only_arguments_once_a_tool_is_decided():
    messages = [SystemMessage("You help."), HumanMessage("Where is my order A1001?")]
    turn = plan_turn(TOOLS, messages, {"type": "function", "function": {"name": "get_order"}})
    assert (turn.kind, turn.tool) == ("arguments", "get_order")
    assert turn.schema["properties"] == {"order_id": {"type": "string"}}
    assert turn.messages[-1]["content"] == "Request: Where is my order A1001?"
    answer = plan_turn(TOOLS, messages, "none")
    assert answer.kind == "answer" and answer.schema is None
    reply = plan_turn(TOOLS, messages, None)
    assert reply.kind == "reply" and "oneOf" in reply.schema


def test_a_tool_result_is_folded_into_the_request_it_answers():
    messages = [
        HumanMessage("Where is my order A1001?"),
        AIMessage("", tool_calls=[{"name": "get_order", "args": {"order_id": "A1001"}, "id": "1"}]),
        ToolMessage('{"status": "shipped"}', tool_call_id="1", name="get_order"),
    ]
    turn = plan_turn(TOOLS, messages, "none")
    assert [m["role"] for m in turn.messages] == ["user"]
    assert 'Result of get_order: {"status": "shipped"}' in turn.messages[0]["content"]


@pytest.mark.parametrize(
    "options,field",
    [({"tool_routing": "magic"}, "options.tool_routing"), ({"tool_route_threshold": "high"}, "options.tool_route_threshold"),
     ({"tool_route_threshold": 3}, "options.tool_route_threshold"), ({"tool_route_threshold": True}, "options.tool_route_threshold")],
)
def test_bad_routing_options_are_reported(options, field):
    assert [p[0] for p in option_problems(options, ROUTING_OPTIONS, "local")] == [field]
    problems = get_provider("local").check(ModelConfig(options=options), base_dir=Path("."))
    assert any(name == field for name, _ in problems)


def test_routing_options_reach_the_local_model():
    model = get_provider("local").create(ModelConfig(options={"tool_routing": "model", "tool_route_threshold": 0.5}), base_dir=Path("."))
    assert (model.tool_routing, model.tool_route_threshold) == ("model", 0.5)


def test_the_packaged_embedder_routes_real_requests():
    """The default router over all-MiniLM: order questions go to the order tool, small talk to an answer."""
    from gptbuilder.models.tool_routing import default_router

    router = default_router()
    assert router.route(TOOLS, "has my order B2040 shipped yet?").tool == "get_order"
    assert router.route(TOOLS, "Convert 100 USD to EUR").tool == "convert_currency"
    for small_talk in ("Hello!", "Tell me a joke.", "Thanks, bye"):
        assert router.route(TOOLS, small_talk).tool is None, small_talk


def test_a_gpts_own_tools_and_a_callers_tool_dicts_route_alike():
    """A GPT with tools offered a client's tools too (Open WebUI's): one list of OpenAI dicts, routed as one."""
    timestamp = {"type": "function", "function": {"name": "get_current_timestamp", "description": "Get the current Unix timestamp."}}
    mixed = openai_tools([get_order, timestamp])
    router = ToolRouter(lambda texts: [[float("order" in t.lower()), float("time" in t.lower())] for t in texts])
    assert routed_choice(mixed, [HumanMessage("where is my order A1?")], None, router=router)["function"]["name"] == "get_order"
    chosen = routed_choice(mixed, [HumanMessage("what time is it?")], None, router=router)
    assert chosen == {"type": "function", "function": {"name": "get_current_timestamp"}}
    turn = plan_turn(mixed, [HumanMessage("what time is it?")], chosen)
    assert (turn.kind, turn.tool, turn.schema) == ("arguments", "get_current_timestamp", {"type": "object", "properties": {}})
