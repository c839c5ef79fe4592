"""A GPT's own tools and the caller's in one request, over /v1: collisions named, bad choices and results refused."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from gptbuilder.server import ServerConfig
from tests.test_agent_tools import orders  # noqa: F401 - the demo orders service, as a fixture

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
MY_ORDER = {"type": "function", "function": {"name": "getOrder", "description": "My own order lookup", "parameters": {}}}


def call(name: str, **arguments) -> str:
    return json.dumps({"type": "tool_call", "name": name, "arguments": arguments})


@pytest.fixture
def server(write_spec, make_app, live, orders):
    """`shop`: a GPT with the orders action (getOrder, cancelOrder…) on the fake model, which looks an order up, then the weather."""
    replies = [call("getOrder", order_id="A1001"), call("get_weather", city="Paris"), "Shipped, and sunny."]
    write_spec(
        "shop",
        "name: Shop\ninstructions: Use the tools.\nallow_private_network: true\n"
        f"model:\n  provider: fake\n  options:\n    replies: {json.dumps(replies)}\n"
        "tools:\n  - action: {openapi: actions/orders.openapi.yaml}\n",
    )
    return live(make_app(ServerConfig()))


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


ASK = [{"role": "user", "content": "Where is A1001, and the weather in Paris?"}]


def test_the_gpts_tool_runs_inside_and_the_callers_comes_back_to_it(client, orders):
    reply = client.chat.completions.with_raw_response.create(model="shop", messages=ASK, tools=[WEATHER])
    choice = reply.parse().choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert [s["name"] for s in choice.message.model_extra["tool_steps"]] == ["getOrder", "getOrder"], "the GPT's step, beside"
    assert "/orders/A1001" in orders.raw_paths
    assert "x-gptbuilder-shadowed-tools" not in reply.headers and "shadowed_tools" not in reply.parse().model_extra


def test_a_callers_tool_named_like_the_gpts_is_not_offered_and_the_answer_says_so(server, client, orders):
    reply = client.chat.completions.with_raw_response.create(model="shop", messages=ASK, tools=[MY_ORDER, WEATHER])
    assert reply.headers["x-gptbuilder-shadowed-tools"] == "getOrder"
    completion = reply.parse()
    assert completion.model_extra["shadowed_tools"] == ["getOrder"]
    assert [c.function.name for c in completion.choices[0].message.tool_calls] == ["get_weather"], "the GPT's getOrder ran instead"
    assert "/orders/A1001" in orders.raw_paths
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", timeout=30,
                      json={"model": "shop", "messages": ASK, "tools": [MY_ORDER, WEATHER], "stream": True}) as streamed:
        assert streamed.headers["x-gptbuilder-shadowed-tools"] == "getOrder"
        first = json.loads(next(line for line in streamed.iter_lines() if line.startswith("data: "))[6:])
    assert first["shadowed_tools"] == ["getOrder"]
    response = httpx.post(f"{server.url}/v1/responses", timeout=30, json={
        "model": "shop", "input": "Where is A1001?",
        "tools": [{"type": "function", **MY_ORDER["function"]}, {"type": "function", **WEATHER["function"]}]})
    assert response.status_code == 200, response.text
    assert response.headers["x-gptbuilder-shadowed-tools"] == "getOrder" and response.json()["shadowed_tools"] == ["getOrder"]


def test_tool_choice_naming_one_of_the_gpts_tools_is_refused(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="shop", messages=ASK, tools=[MY_ORDER, WEATHER],
                                       tool_choice={"type": "function", "function": {"name": "getOrder"}})
    error = refused.value.body
    assert error["param"] == "tool_choice" and "'getOrder', one of shop's own tools" in error["message"]
    with pytest.raises(openai.BadRequestError, match="every tool sent has the name of one of shop's own"):
        client.chat.completions.create(model="shop", messages=ASK, tools=[MY_ORDER], tool_choice="required")


def test_a_tool_result_for_an_unknown_call_id_is_refused(client, orders):
    history = [
        *ASK,
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "sunny"},
    ]
    with pytest.raises(openai.BadRequestError, match="tool call id 'call_2', which no assistant message before it made"):
        client.chat.completions.create(model="shop", messages=history, tools=[WEATHER])
    assert orders.raw_paths == []
