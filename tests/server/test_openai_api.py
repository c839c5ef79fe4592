"""The /v1 API through the official openai client and langchain-openai, against a live server."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from gptbuilder.server import ServerConfig
from tests.test_agent_tools import orders  # noqa: F401 - the demo orders service, as a fixture

KEY = "sk-test-key-1"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def server(make_app, live, echo, write_spec):
    call = json.dumps({"type": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}})
    write_spec(
        "weather",
        f"name: Weather\ninstructions: Help.\nmodel:\n  provider: fake\n  options:\n    replies: [{json.dumps(call)}, 'Sunny in Paris.']\n",
    )
    return live(make_app(ServerConfig(api_keys=(KEY,))))


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list().data]
    assert set(ids) == {"echo", "weather"}
    model = client.models.retrieve("echo")
    assert model.id == "echo" and model.object == "model" and model.owned_by == "gptbuilder"


def test_chat_completion(client):
    reply = client.chat.completions.create(
        model="echo",
        messages=[{"role": "system", "content": "Be nice."}, {"role": "user", "content": "hello"}],
        temperature=0.5,
        top_p=0.9,
        max_tokens=20,
        seed=1,
        user="u1",
        stop=["zzz"],
    )
    assert reply.object == "chat.completion"
    assert reply.model == "echo"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "You said: hello"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 3
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 3


def test_content_parts_and_developer_role(client):
    reply = client.chat.completions.create(
        model="echo",
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "Be nice."}]},
            {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "again"}]},
        ],
    )
    assert reply.choices[0].message.content == "You said: hello\nagain"


def test_max_completion_tokens_cuts_the_answer(client):
    reply = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "a b c d"}], max_completion_tokens=2)
    assert reply.choices[0].message.content == "You said:"
    assert reply.choices[0].finish_reason == "length"


def test_stream_role_content_finish_usage_done(client):
    stream = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hi there"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: hi there"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert len({c.id for c in chunks}) == 1


def test_raw_stream_ends_with_done_marker(server):
    body = {"model": "echo", "messages": [{"role": "user", "content": "x"}], "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith(("data: ", ":")) for line in lines)


def test_client_tool_calls_then_results(client):
    first = client.chat.completions.create(
        model="weather", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER], tool_choice="auto"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert isinstance(call.function.arguments, str) and json.loads(call.function.arguments) == {"city": "Paris"}
    second = client.chat.completions.create(
        model="weather",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
        ],
        tools=[WEATHER],
    )
    assert second.choices[0].message.content == "Sunny in Paris."
    assert second.choices[0].finish_reason == "stop"


def test_streamed_tool_call_deltas_have_index(client):
    chunks = list(
        client.chat.completions.create(
            model="weather", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER], stream=True
        )
    )
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].index == 0 and deltas[0].function.name == "get_weather"
    assert json.loads(deltas[0].function.arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_usage_endpoint_counts_the_callers_key(client, server):
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "one"}])
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "two"}], stream=True).close()
    list(client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "three"}], stream=True))
    usage = httpx.get(f"{server.url}/v1/usage", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert usage["key_id"].startswith("key_") and KEY not in json.dumps(usage)
    [line] = usage["data"]
    assert line["model"] == "echo" and line["requests"] >= 2
    assert line["completion_tokens"] >= 6


def test_legacy_completions_with_the_openai_client(client):
    reply = client.completions.create(model="echo", prompt="tell me", max_tokens=10, temperature=0.7)
    assert reply.object == "text_completion"
    assert reply.choices[0].text == "You said: tell me"
    streamed = "".join(c.choices[0].text for c in client.completions.create(model="echo", prompt="tell me", stream=True) if c.choices)
    assert streamed == "You said: tell me"


def test_seed_style_requests_post_on_the_path_form(server):
    """SEED.md §5.2's client, with only its URL and key changed."""
    import requests

    response = requests.post(
        f"{server.url}/v1/models/echo/completions",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
        json={"prompt": "write quicksort", "max_tokens": 100, "temperature": 0.7},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["text"] == "You said: write quicksort"


def test_errors_map_to_openai_exceptions(server, client):
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="ecko", messages=[{"role": "user", "content": "x"}])
    assert "did you mean 'echo'" in unknown.value.message
    assert unknown.value.body["code"] == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}], n=2)
    assert "n=1" in bad.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="echo", messages=[])


def test_langchain_chat_openai(server):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="echo", base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    assert llm.invoke("hello langchain").content == "You said: hello langchain"
    assert "".join(c.content for c in llm.stream("streamed")) == "You said: streamed"
    bound = ChatOpenAI(model="weather", base_url=f"{server.url}/v1", api_key=KEY, max_retries=0).bind_tools([WEATHER])
    message = bound.invoke("Weather in Paris?")
    assert message.tool_calls[0]["name"] == "get_weather" and message.tool_calls[0]["args"] == {"city": "Paris"}


@pytest.mark.slow
def test_end_to_end_on_the_embedded_model(make_app, live, write_spec):
    """No model section: the real SmolLM2 answers through the API, streamed and not."""
    write_spec("smol", "name: Smol\ninstructions: You are a helpful assistant. Answer briefly.\n")
    server = live(make_app(ServerConfig()))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=24, temperature=0
    )
    assert reply.choices[0].message.content.strip()
    assert reply.usage.prompt_tokens > 10 and 0 < reply.usage.completion_tokens <= 24
    chunks = list(
        client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Say hi."}], max_tokens=12, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    called = client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "What's the weather in Paris right now?"}], tools=[WEATHER]
    )
    assert called.choices[0].finish_reason == "tool_calls"
    call = called.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}


def test_citations_ride_in_an_extra_message_field(make_app, live, write_spec, gpts_dir):
    (gpts_dir / "kb").mkdir()
    (gpts_dir / "kb" / "returns.md").write_text("# Returns\nShoes can be returned within 30 days.\n", encoding="utf-8")
    write_spec("acme", "name: Acme\ninstructions: x\nmodel: {provider: fake, options: {replies: ['30 days [1].']}}\n"
                       "knowledge: {files: [kb/*.md], embedding_model: fake}\n")
    server = live(make_app(ServerConfig()))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    message = client.chat.completions.create(model="acme", messages=[{"role": "user", "content": "returns?"}]).choices[0].message
    assert message.content == "30 days [1]."
    [citation] = message.model_extra["citations"]
    assert citation["number"] == 1 and citation["source"].endswith("returns.md") and citation["cited"] is True
    chunks = list(client.chat.completions.create(model="acme", messages=[{"role": "user", "content": "returns?"}], stream=True))
    streamed = [c for chunk in chunks if chunk.choices for c in (chunk.choices[0].delta.model_extra or {}).get("citations", [])]
    assert [c["number"] for c in streamed] == [1]
    legacy = client.completions.create(model="acme", prompt="returns?")
    assert legacy.choices[0].model_extra["citations"][0]["number"] == 1


def test_action_approval_round_trip_over_the_api(make_app, live, write_spec, gpts_dir, orders):
    """A GPT action that changes something waits for approval; the next request approves it by call id."""
    cancel = json.dumps({"type": "tool_call", "name": "cancelOrder", "arguments": {"order_id": "A1002"}})
    write_spec(
        "acme",
        "name: Acme\ninstructions: Use the tools.\nallow_private_network: true\n"
        f"model:\n  provider: fake\n  options:\n    replies: [{json.dumps(cancel)}, 'Order A1002 is cancelled.']\n"
        "tools:\n  - action: {openapi: actions/orders.openapi.yaml}\n",
    )
    server = live(make_app(ServerConfig()))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    asked = [{"role": "user", "content": "Cancel A1002"}]
    paused = client.chat.completions.create(model="acme", messages=asked).choices[0]
    [request] = paused.message.model_extra["confirmation_requests"]
    assert (request["name"], request["arguments"]) == ("cancelOrder", {"order_id": "A1002"})
    assert paused.finish_reason == "stop" and paused.message.tool_calls is None
    assert not any("cancel" in path for path in orders.raw_paths)
    held = {"id": request["id"], "type": "function", "function": {"name": "cancelOrder", "arguments": json.dumps(request["arguments"])}}
    messages = [*asked, {"role": "assistant", "content": paused.message.content, "tool_calls": [held]}, {"role": "user", "content": "yes"}]
    done = client.chat.completions.create(model="acme", messages=messages, extra_body={"approvals": {request["id"]: True}})
    assert done.choices[0].message.content == "Order A1002 is cancelled."
    steps = done.choices[0].message.model_extra["tool_steps"]
    assert [s["type"] for s in steps] == ["tool_call", "tool_result"] and steps[1]["error"] is False
    assert orders.raw_paths.count("/orders/A1002/cancel") == 1


def test_curated_answers_are_marked_in_the_message_the_stream_and_legacy_completions(make_app, live, write_spec):
    write_spec(
        "shop",
        "name: Shop\ninstructions: x\nmodel: {provider: fake, options: {replies: ['from the model']}}\n"
        "knowledge: {files: [], embedding_model: fake, on_no_match: answer}\n"
        "curated_answers:\n  - {question: 'What is your return window?', answer: '30 days from delivery.'}\n",
    )
    server = live(make_app(ServerConfig()))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    ask = [{"role": "user", "content": "What is your return window?"}]
    message = client.chat.completions.create(model="shop", messages=ask).choices[0].message
    assert message.content == "30 days from delivery."
    assert message.model_extra["curated"]["question"] == "What is your return window?"
    chunks = list(client.chat.completions.create(model="shop", messages=ask, stream=True))
    marks = [(c.choices[0].delta.model_extra or {}).get("curated") for c in chunks if c.choices]
    assert any(m and m["score"] > 0.99 for m in marks)
    legacy = client.completions.create(model="shop", prompt="What is your return window?")
    assert legacy.choices[0].model_extra["curated"]["question"] == "What is your return window?"
    other = client.chat.completions.create(model="shop", messages=[{"role": "user", "content": "hello"}]).choices[0].message
    assert other.content == "from the model" and "curated" not in (other.model_extra or {})


def test_a_verified_answer_reports_its_check_in_an_extra_field(make_app, live, write_spec, gpts_dir):
    (gpts_dir / "kb").mkdir()
    (gpts_dir / "kb" / "returns.md").write_text("# Returns\nShoes can be returned within 30 days.\n", encoding="utf-8")
    write_spec("acme", "name: Acme\ninstructions: x\nmodel: {provider: fake, options: {replies: ['You have 90 days [1].']}}\n"
                       "knowledge: {files: [kb/*.md], embedding_model: fake}\n")  # verified is the default
    server = live(make_app(ServerConfig()))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    message = client.chat.completions.create(model="acme", messages=[{"role": "user", "content": "returns?"}]).choices[0].message
    assert message.content == "Shoes can be returned within 30 days. [1]"  # the invented 90 days never reaches the client
    grounding = message.model_extra["grounding"]
    assert grounding["mode"] == "verified" and grounding["changes"][0]["unsupported"] == ["90 days"]
    chunks = list(client.chat.completions.create(model="acme", messages=[{"role": "user", "content": "returns?"}], stream=True))
    streamed = [chunk.choices[0].delta.model_extra.get("grounding") for chunk in chunks if chunk.choices]
    assert any(g and g["changes"][0]["action"] == "quoted" for g in streamed)
    assert "90" not in "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


@pytest.fixture
def app_client(make_app, echo):
    from fastapi.testclient import TestClient

    return TestClient(make_app(ServerConfig(api_keys=(KEY,))), headers={"Authorization": f"Bearer {KEY}"})


def _envelope(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"], error
    return error


def test_unknown_paths_and_wrong_methods_under_v1_answer_in_the_error_envelope(app_client):
    unknown = _envelope(app_client.post("/v1/foo", json={}), 404)
    assert unknown["message"].startswith("Invalid URL (POST /v1/foo)") and unknown["code"] == "not_found"
    wrong = app_client.get("/v1/chat/completions")
    error = _envelope(wrong, 405)
    assert error["code"] == "method_not_allowed" and "POST" in error["message"] and wrong.headers["allow"] == "POST"
    assert _envelope(app_client.delete("/v1/models"), 405)["code"] == "method_not_allowed"
    assert _envelope(app_client.get("/nope"), 404)["message"] == "Not Found"  # outside /v1: Starlette's words, still an envelope


def test_validation_errors_name_the_parameter_without_pydantic_prefixes(app_client):
    chat = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    empty = _envelope(app_client.post("/v1/chat/completions", json={**chat, "messages": []}), 400)
    assert "Value error" not in empty["message"] and empty["param"] == "messages" and empty["code"] == "invalid_value"
    typed = _envelope(app_client.post("/v1/chat/completions", json={**chat, "temperature": "hot"}), 400)
    assert (typed["param"], typed["code"]) == ("temperature", "invalid_type")
    missing = _envelope(app_client.post("/v1/chat/completions", json={"messages": chat["messages"]}), 400)
    assert (missing["param"], missing["code"]) == ("model", "missing_required_parameter")
    high = _envelope(app_client.post("/v1/chat/completions", json={**chat, "temperature": 3}), 400)
    assert (high["param"], high["code"]) == ("temperature", "above_max_value")


def test_stream_events_are_separated_by_a_bare_blank_line(server):
    body = {"model": "echo", "messages": [{"role": "user", "content": "two words"}], "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        raw = b"".join(r.iter_bytes())
    assert b"\r" not in raw and raw.endswith(b"data: [DONE]\n\n")
    events = raw.removesuffix(b"\n\n").split(b"\n\n")
    assert all(e.startswith(b"data: ") and b"\n" not in e for e in events)
    assert "".join(
        c["choices"][0]["delta"].get("content", "") for c in (json.loads(e[6:]) for e in events[:-1]) if c["choices"]
    ) == "You said: two words"


def test_keepalive_pings_use_the_same_line_endings():
    from gptbuilder.server.openai_api import sse_response

    async def nothing():
        return
        yield

    class _State:
        class config:
            keepalive_seconds = 15

    assert sse_response(nothing(), _State()).sep == "\n"
