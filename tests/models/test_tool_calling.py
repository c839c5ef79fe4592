"""Tool calling for local models: the reply schema, parsing, template rendering, and the real model under a grammar."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from gptbuilder.models.llama_cpp import provider
from gptbuilder.models.tool_calling import openai_tools, parse_reply, reply_schema, template_messages, tool_instructions
from gptbuilder.spec import ModelConfig


@tool
def get_order(order_id: str) -> str:
    """Look up an order by its id, e.g. A1001, and return its status."""
    return f"order {order_id}: shipped"


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


TOOLS = openai_tools([get_order, multiply])


def test_schema_allows_an_answer_or_a_valid_call_of_each_tool():
    schema = reply_schema(TOOLS)
    jsonschema.validate({"type": "answer", "content": "hi"}, schema)
    jsonschema.validate({"type": "tool_call", "name": "multiply", "arguments": {"a": 2, "b": 3}}, schema)
    for bad in (
        {"type": "tool_call", "name": "multiply", "arguments": {"a": "two"}},
        {"type": "tool_call", "name": "delete_everything", "arguments": {}},
        {"type": "answer"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


@pytest.mark.parametrize(
    ("choice", "answer_ok", "tools_ok"),
    [(None, True, {"get_order", "multiply"}), ("none", True, set()), ("any", False, {"get_order", "multiply"}),
     ("multiply", False, {"multiply"}), ({"type": "function", "function": {"name": "get_order"}}, False, {"get_order"})],
)
def test_tool_choice_shapes_the_schema(choice, answer_ok, tools_ok):
    schema = reply_schema(TOOLS, choice)
    branches = schema.get("oneOf", [schema])
    assert any(b["properties"]["type"]["const"] == "answer" for b in branches) == answer_ok
    assert {b["properties"]["name"]["const"] for b in branches if "name" in b["properties"]} == tools_ok


def test_instructions_name_every_tool_with_its_arguments():
    text = tool_instructions(TOOLS)
    assert "- get_order(order_id (string)): Look up an order" in text
    assert "- multiply(a (number), b (number))" in text
    assert '"type": "answer"' in text


def test_instructions_hold_no_argument_values_to_copy():
    # The embedded model copied example values such as {"order_id": "text"} instead of the user's.
    text = tool_instructions(TOOLS)
    assert '"order_id":' not in text and '"a":' not in text


@pytest.mark.parametrize(
    ("reply", "content", "calls", "invalid"),
    [
        ('{"type": "answer", "content": "Paris."}', "Paris.", [], 0),
        ('{"type": "tool_call", "name": "multiply", "arguments": {"a": 2, "b": 3}}', "", [("multiply", {"a": 2, "b": 3})], 0),
        ('{"type": "tool_call", "name": "nope", "arguments": {}}', "", [("nope", {})], 0),
        ('{"type": "tool_call", "name": "multiply", "arguments": [1, 2]}', "", [], 1),
        ("not json at all", "not json at all", [], 0),
        ('{"type": "answer", "content": "two\nlines"}', "two\nlines", [], 0),
    ],
)
def test_parse_reply(reply, content, calls, invalid):
    message = parse_reply(reply)
    assert message.content == content
    assert [(c["name"], c["args"]) for c in message.tool_calls] == calls
    assert len(message.invalid_tool_calls) == invalid


def test_template_messages_write_calls_and_results_as_text():
    call = {"name": "get_order", "args": {"order_id": "A1"}, "id": "call_1", "type": "tool_call"}
    rendered = template_messages(
        [SystemMessage("Be brief."), HumanMessage("Where is A1?"), AIMessage("", tool_calls=[call]),
         ToolMessage("shipped", tool_call_id="call_1", name="get_order")],
        "## Tools",
    )
    assert rendered[0] == {"role": "system", "content": "Be brief.\n\n## Tools"}
    assert rendered[-3] == {"role": "user", "content": "Where is A1?"}
    assert json.loads(rendered[-2]["content"]) == {"type": "tool_call", "name": "get_order", "arguments": {"order_id": "A1"}}
    assert rendered[-1] == {"role": "user", "content": "Result of get_order: shipped"}


def test_worked_example_turns_come_between_the_system_prompt_and_the_conversation():
    rendered = template_messages([HumanMessage("Hi")], "## Tools")
    assert rendered[0] == {"role": "system", "content": "## Tools"}
    assert rendered[-1] == {"role": "user", "content": "Hi"}
    examples = [json.loads(m["content"]) for m in rendered[1:-1] if m["role"] == "assistant"]
    assert {e["type"] for e in examples} == {"answer", "tool_call"}
    assert all(e["name"] not in {t["function"]["name"] for t in TOOLS} for e in examples if e["type"] == "tool_call")


PROMPTS = ["Where is my order A1001?", "What is 12 times 7?", "Hello!", "Multiply 3.5 by 2", "Status of order B7?"]


@pytest.mark.slow
def test_the_embedded_model_under_the_grammar_only_answers_or_makes_valid_calls():
    model = provider.create(ModelConfig(max_tokens=120), base_dir=Path(".")).bind_tools([get_order, multiply])
    by_name = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    for prompt in PROMPTS:
        reply = model.invoke([SystemMessage("You are a helpful assistant."), HumanMessage(prompt)])
        assert not reply.invalid_tool_calls, prompt
        for call in reply.tool_calls:
            jsonschema.validate(call["args"], by_name[call["name"]])
        assert reply.tool_calls or reply.text, prompt
