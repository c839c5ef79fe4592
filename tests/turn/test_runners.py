"""The three runners on the fake model: a plain answer, the caller's tools, the GPT's own tool loop."""

from __future__ import annotations

import json

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import StructuredTool

from gptbuilder.events import ConfirmationRequest, TextDelta, ToolCall, ToolResult, Usage
from gptbuilder.models.fake import FakeChatModel
from gptbuilder.turn import Options, Turn
from gptbuilder.turn.runners import Answer, ClientTools, ToolLoop
from tests.turn.helpers import drain

PROMPT = [SystemMessage("Be brief."), HumanMessage("hello there")]


def call(name: str, **arguments) -> str:
    return json.dumps({"type": "tool_call", "name": name, "arguments": arguments})


def test_an_answer_streams_text_and_returns_the_backends_usage_and_finish_reason():
    events, result = drive_runner(Answer(FakeChatModel()), Turn("g", PROMPT[1:], Options(max_tokens=2)))
    assert "".join(e.text for e in events) == "You said:"
    assert result.finish_reason == "length" and result.usage == Usage(FakeChatModel().count_message_tokens(PROMPT), 2)
    assert result.message is not None and result.message.text == "You said:"


def drive_runner(runner, turn):
    return drain(runner(turn, PROMPT))


WEATHER = {"type": "function", "function": {"name": "weather", "description": "Weather.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_the_callers_tools_come_back_as_calls_with_finish_reason_tool_calls():
    model = FakeChatModel(replies=[call("weather", city="Paris")])
    events, result = drive_runner(ClientTools(model), Turn("g", PROMPT[1:], client_tools=[WEATHER], tool_choice="auto"))
    assert [(e.name, e.arguments) for e in events if isinstance(e, ToolCall)] == [("weather", {"city": "Paris"})]
    assert result.finish_reason == "tool_calls"


def test_an_answer_instead_of_a_call_finishes_as_stop():
    events, result = drive_runner(ClientTools(FakeChatModel(replies=["Sunny."])), Turn("g", PROMPT[1:], client_tools=[WEATHER]))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Sunny."] and result.finish_reason == "stop"


def _double(x: int) -> str:
    return str(2 * x)


def _erase(x: int) -> str:  # pragma: no cover - must never run unconfirmed
    raise AssertionError("ran without approval")


DOUBLE = StructuredTool.from_function(_double, name="double", description="Double a number.")
ERASE = StructuredTool.from_function(_erase, name="erase", description="Erase.", metadata={"requires_confirmation": True})


def test_the_tool_loop_runs_tools_then_answers_and_sums_usage():
    model = FakeChatModel(replies=[call("double", x=21), "It is 42."])
    events, result = drive_runner(ToolLoop(model, [DOUBLE], max_calls=3), Turn("g", PROMPT[1:]))
    assert [type(e) for e in events[:2]] == [ToolCall, ToolResult] and all(isinstance(e, TextDelta) for e in events[2:])
    assert "".join(e.text for e in events[2:]) == "It is 42."
    assert events[1].content == "42" and result.finish_reason == "stop"
    assert result.usage.completion_tokens == 1 + 3 and result.message.text == "It is 42."


def test_the_tool_loop_pauses_before_a_call_that_needs_confirmation():
    model = FakeChatModel(replies=[call("erase", x=1), "never"])
    events, result = drive_runner(ToolLoop(model, [DOUBLE, ERASE], max_calls=3), Turn("g", PROMPT[1:]))
    assert [type(e) for e in events] == [ConfirmationRequest, TextDelta]
    assert result.finish_reason == "confirmation_required" and result.message.tool_calls[0]["name"] == "erase"
