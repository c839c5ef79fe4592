"""`/v1/responses` through the official openai client, against a live server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import Field

from gptbuilder.models.fake import FakeChatModel
from gptbuilder.server import ServerConfig
from tests.server.conftest import ECHO, live, make_app, slow_factory  # noqa: F401
from tests.test_agent_tools import orders  # noqa: F401 - the demo orders service, as a fixture

KEY, OTHER = "sk-resp-key-1", "sk-resp-key-2"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CALL = json.dumps({"type": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}})
STREAM_TYPES = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


class Recorder(FakeChatModel):
    """The fake model, keeping every prompt it was given."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Iterator[Any]:
        self.seen.append(list(messages))
        yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)


@pytest.fixture
def server(make_app, live, echo, write_spec):
    replies = f"[{json.dumps(CALL)}, 'Sunny in Paris.']"
    write_spec("weather", f"name: Weather\ninstructions: Help.\nmodel:\n  provider: fake\n  options:\n    replies: {replies}\n")
    return live(make_app(ServerConfig(api_keys=(KEY, OTHER))))


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)


@pytest.fixture
def other(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=OTHER, max_retries=0)


@pytest.fixture
def recorded(make_app, live, write_spec):
    """A live server whose every GPT answers with one recording fake model (echoing the last user message)."""
    model = Recorder()
    write_spec("echo", ECHO)
    server = live(make_app(ServerConfig(), model_factory=slow_factory(model)))
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0), model


def test_create_answers_in_the_responses_shape(client):
    response = client.responses.create(model="echo", input="hello", metadata={"ticket": "42"})
    assert response.id.startswith("resp_") and response.object == "response" and response.model == "echo"
    assert response.status == "completed" and response.error is None
    assert response.output_text == "You said: hello"
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.content[0].type == "output_text"
    assert response.usage.output_tokens == 3 and response.usage.total_tokens == response.usage.input_tokens + 3
    assert response.metadata == {"ticket": "42"}
    assert client.responses.retrieve(response.id).output_text == "You said: hello"


def test_input_items_and_instructions_reach_the_model_below_the_gpts_own(recorded):
    client, model = recorded
    items = [
        {"role": "developer", "content": "Answer in French."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "bonjour"}, {"type": "input_text", "text": "toi"}]},
    ]
    response = client.responses.create(model="echo", input=items, instructions="Be formal.")
    assert response.output_text == "You said: bonjour\ntoi" and response.instructions == "Be formal."
    [system, user] = model.seen[-1]
    assert isinstance(system, SystemMessage) and system.text.startswith("Be brief.")  # the GPT's instructions first
    notes = system.text.split("## Notes from the app", 1)[1]
    assert "Be formal." in notes and "Answer in French." in notes
    assert isinstance(user, HumanMessage) and user.text == "bonjour\ntoi"


def test_stream_sends_the_typed_events_and_the_final_response(client):
    with client.responses.stream(model="echo", input="hi there") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert [t for i, t in enumerate(types) if t != "response.output_text.delta" or types[i - 1] != t] == STREAM_TYPES
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "You said: hi there"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.status == "completed" and final.output_text == "You said: hi there" and final.usage.output_tokens == 4
    assert client.responses.retrieve(final.id).output_text == "You said: hi there"  # stored before it said completed


def test_raw_stream_names_each_event_and_sends_no_done_marker(server):
    body = {"model": "echo", "input": "x", "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/responses", json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    assert "\r" not in raw and raw.endswith("\n\n")  # OpenAI's bare line endings: hand-written clients split on \n\n
    lines = [line for line in raw.split("\n") if line and not line.startswith(":")]
    assert lines[0] == "event: response.created" and json.loads(lines[1][len("data: "):])["type"] == "response.created"
    assert lines[-2] == "event: response.completed" and "[DONE]" not in "".join(lines)


def test_a_conversation_continues_from_previous_response_id(recorded):
    client, model = recorded
    first = client.responses.create(model="echo", input="My name is Ada.", instructions="Only for the first turn.")
    with client.responses.stream(model="echo", input="What is my name?", previous_response_id=first.id) as stream:
        second = stream.get_final_response()
    assert second.previous_response_id == first.id
    third = client.responses.create(model="echo", input="And again?", previous_response_id=second.id)
    assert third.output_text == "You said: And again?"
    system, *history = model.seen[-1]
    assert [(type(m), m.text) for m in history] == [
        (HumanMessage, "My name is Ada."),
        (AIMessage, "You said: My name is Ada."),
        (HumanMessage, "What is my name?"),
        (AIMessage, "You said: What is my name?"),
        (HumanMessage, "And again?"),
    ]
    assert "Only for the first turn." not in system.text  # instructions are not carried over, as on OpenAI


def test_function_tool_round_trip(client):
    first = client.responses.create(model="weather", input="Weather in Paris?", tools=[WEATHER])
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert first.tools[0].name == "get_weather"
    second = client.responses.create(
        model="weather",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}],
        tools=[WEATHER],
    )
    assert second.output_text == "Sunny in Paris."


def test_function_call_streams_its_argument_events_and_items_can_carry_the_whole_conversation(client):
    with client.responses.stream(model="weather", input="Weather in Paris?", tools=[WEATHER], store=False) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[2:6] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    [call] = final.output
    assert json.loads(call.arguments) == {"city": "Paris"}
    items = [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    assert client.responses.create(model="weather", input=items, tools=[WEATHER]).output_text == "Sunny in Paris."
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(final.id)  # store: false


def test_tool_results_from_items_reach_the_model_as_tool_messages(recorded):
    client, model = recorded
    items = [
        {"role": "user", "content": "Weather?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "snow"}]},
    ]
    client.responses.create(model="echo", input=items, tools=[WEATHER])
    [_system, _user, ai, tool] = model.seen[-1]
    assert ai.tool_calls[0]["name"] == "get_weather" and ai.tool_calls[0]["args"] == {"city": "Oslo"}
    assert isinstance(tool, ToolMessage) and tool.tool_call_id == "c1" and tool.text == "snow"


def test_another_keys_response_is_not_found_anywhere(client, other):
    mine = client.responses.create(model="echo", input="secret plan")
    for attempt in (
        lambda: other.responses.create(model="echo", input="what did I say?", previous_response_id=mine.id),
        lambda: other.responses.retrieve(mine.id),
        lambda: other.responses.delete(mine.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            attempt()
        assert "secret" not in caught.value.message
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model="echo", input="x", previous_response_id="resp_nope")
    assert unknown.value.body["param"] == "previous_response_id" and unknown.value.status_code == 404
    assert client.responses.retrieve(mine.id).output_text == "You said: secret plan"  # still there for its owner


def test_delete_forgets_the_response(client):
    response = client.responses.create(model="echo", input="forget me")
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="echo", input="x", previous_response_id=response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)


def test_a_cut_answer_is_incomplete(client):
    response = client.responses.create(model="echo", input="a b c d", max_output_tokens=2)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "You said:"


def test_citations_ride_in_an_extra_field(citing_acme):
    client = citing_acme
    response = client.responses.create(model="acme", input="returns?")
    assert response.output_text == "30 days [1]."
    [citation] = response.model_extra["citations"]
    assert citation["number"] == 1 and citation["source"].endswith("returns.md") and citation["cited"] is True
    with client.responses.stream(model="acme", input="returns?") as stream:
        assert stream.get_final_response().model_extra["citations"][0]["number"] == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"input": "x", "tools": [{"type": "function", "name": "bad name!"}]}, "tools[0].name"),
        ({"input": "x", "tool_choice": "required"}, "tool_choice"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x"}]}]}, "input[0].content"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]}, "input[0].arguments"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": []}, "input"),
        ({"input": "x", "text": {"format": {"type": "bogus"}}}, "text.format"),
        ({"input": "x", "background": True}, "background"),
    ],
)
def test_bad_requests_are_400_naming_the_field(client, body, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="echo", **body)
    assert caught.value.body["param"] == param


def test_keys_are_required(server):
    anonymous = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.responses.create(model="echo", input="x")


def test_a_failure_midway_ends_the_stream_with_error_and_response_failed(make_app, live, write_spec):
    write_spec("flaky", "name: Flaky\ninstructions: x\nmodel: {provider: fake, options: {replies: ['one two three'], fail_after: 1}}\n")
    server = live(make_app(ServerConfig()))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    with client.responses.stream(model="flaky", input="x") as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert events[-2].code == "model_error" and "fake model failed" in events[-2].message
    assert events[-1].response.status == "failed" and events[-1].response.error.code == "model_error"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(events[-1].response.id)  # a failed answer is not kept


def test_action_approval_continues_from_the_paused_response(cancelling_acme, orders):
    client = openai.OpenAI(base_url=f"{cancelling_acme}/v1", api_key="x", max_retries=0)
    paused = client.responses.create(model="acme", input="Cancel A1002")
    [request] = paused.model_extra["confirmation_requests"]
    assert request["name"] == "cancelOrder" and not any("cancel" in path for path in orders.raw_paths)
    done = client.responses.create(
        model="acme", input="yes", previous_response_id=paused.id, extra_body={"approvals": {request["id"]: True}}
    )
    assert done.output_text == "Order A1002 is cancelled."
    assert [s["type"] for s in done.model_extra["tool_steps"]] == ["tool_call", "tool_result"]
    assert orders.raw_paths.count("/orders/A1002/cancel") == 1
