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


def test_citations_ride_in_an_extra_message_field(citing_acme):
    client = citing_acme
    message = client.chat.completions.create(model="acme", messages=[{"role": "user", "content": "returns?"}]).choices[0].message
    assert message.content == "30 days [1]."
    [citation] = message.model_extra["citations"]
    assert citation["number"] == 1 and citation["source"].endswith("returns.md") and citation["cited"] is True
    chunks = list(client.chat.completions.create(model="acme", messages=[{"role": "user", "content": "returns?"}], stream=True))
    streamed = [c for chunk in chunks if chunk.choices for c in (chunk.choices[0].delta.model_extra or {}).get("citations", [])]
    assert [c["number"] for c in streamed] == [1]
    legacy = client.completions.create(model="acme", prompt="returns?")
    assert legacy.choices[0].model_extra["citations"][0]["number"] == 1


def test_action_approval_round_trip_over_the_api(cancelling_acme, orders):
    """A GPT action that changes something waits for approval; the next request approves it by call id."""
    client = openai.OpenAI(base_url=f"{cancelling_acme}/v1", api_key="x", max_retries=0)
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


CHAT = {"model": "echo", "messages": [{"role": "user", "content": "one two three"}]}


def test_sampling_options_reach_the_model(app_client):
    body = {
        **CHAT, "temperature": 0.3, "top_p": 0.8, "max_tokens": 9, "stop": ["zzz"], "seed": 7, "presence_penalty": 0.5,
        "frequency_penalty": -0.25, "logit_bias": {"42": -100, "7": 2.5}, "logprobs": True, "top_logprobs": 2,
    }
    assert app_client.post("/v1/chat/completions", json=body).status_code == 200
    model = app_client.app.state.gptbuilder.store.agent("echo").model
    assert model.calls[-1] == {
        "temperature": 0.3, "top_p": 0.8, "max_tokens": 9, "stop": ["zzz"], "seed": 7, "presence_penalty": 0.5,
        "frequency_penalty": -0.25, "logit_bias": {42: -100.0, 7: 2.5}, "logprobs": True, "top_logprobs": 2,
    }
    extensions = {"top_k": 40, "min_p": 0.05, "repeat_penalty": 1.2}  # vLLM's and llama.cpp's, as Open WebUI sends them
    assert app_client.post("/v1/chat/completions", json={**CHAT, **extensions}).status_code == 200
    assert model.calls[-1] == {"max_tokens": 512, **extensions}  # 512: its own
    legacy = {"model": "echo", "prompt": "hi", "logprobs": 3, "presence_penalty": 1}
    assert app_client.post("/v1/completions", json=legacy).status_code == 200
    assert model.calls[-1] == {"max_tokens": 512, "logprobs": True, "top_logprobs": 3, "presence_penalty": 1.0}  # 512: its own


def _calculator_gpt(make_app, write_spec, answer: str):
    """An app with a GPT that runs its own calculator tool, then answers ``answer``."""
    from fastapi.testclient import TestClient

    call = json.dumps({"type": "tool_call", "name": "calculator", "arguments": {"expression": "2+2"}})
    replies = json.dumps([call, answer])
    write_spec("calc", f"name: Calc\ninstructions: x\ntools: [calculator]\nmodel: {{provider: fake, options: {{replies: {replies}}}}}\n")
    return TestClient(make_app(ServerConfig()))


def test_sampling_options_reach_a_gpts_own_tool_loop(make_app, write_spec):
    client = _calculator_gpt(make_app, write_spec, "It is 4.")
    body = {
        "model": "calc", "messages": [{"role": "user", "content": "2+2?"}], "seed": 3, "frequency_penalty": 1.5,
        "logit_bias": {"5": 1}, "top_k": 20, "repeat_penalty": 1.1,
    }
    assert client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"] == "It is 4."
    calls = client.app.state.gptbuilder.store.agent("calc").model.calls
    assert len(calls) == 2 and all(c["seed"] == 3 and c["frequency_penalty"] == 1.5 and c["logit_bias"] == {5: 1.0} for c in calls)
    assert all(c["top_k"] == 20 and c["repeat_penalty"] == 1.1 for c in calls)  # the copy the tool loop makes keeps them


def test_logprobs_come_back_in_openais_shape_streamed_and_not(client):
    reply = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi there"}], logprobs=True, top_logprobs=2)
    choice = reply.choices[0]
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens) == choice.message.content == "You said: hi there"
    assert all(t.logprob == -0.5 and t.bytes == list(t.token.encode()) and len(t.top_logprobs) == 2 for t in tokens)
    plain = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    assert plain.choices[0].logprobs is None
    chunks = list(client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hi there"}], logprobs=True, stream=True
    ))
    texts = [c.choices[0] for c in chunks if c.choices and c.choices[0].delta.content]
    assert all("".join(t.token for t in c.logprobs.content) == c.delta.content for c in texts)
    assert all(t.top_logprobs == [] for c in texts for t in c.logprobs.content)
    assert chunks[0].choices[0].logprobs is None and chunks[-1].choices[0].logprobs is None


def test_legacy_completions_report_logprobs_in_their_own_shape(client):
    reply = client.completions.create(model="echo", prompt="tell me", logprobs=2)
    logprobs = reply.choices[0].logprobs
    assert "".join(logprobs.tokens) == reply.choices[0].text == "You said: tell me"
    assert logprobs.token_logprobs == [-0.5] * 4 and logprobs.text_offset == [0, 3, 9, 14]
    assert all(len(top) == 2 for top in logprobs.top_logprobs)
    streamed = [c.choices[0].logprobs for c in client.completions.create(model="echo", prompt="tell me", logprobs=0, stream=True)
                if c.choices and c.choices[0].text]
    assert [offset for lp in streamed for offset in lp.text_offset] == [0, 3, 9, 14]


@pytest.mark.parametrize(("extra", "param", "code"), [
    ({"logit_bias": {"50000": 1}}, "logit_bias", "invalid_value"),  # the fake model's vocabulary is 50,000 ids
    ({"logit_bias": {"-1": 1}}, "logit_bias.-1.[key]", "below_min_value"),
    ({"logit_bias": {"the": 1}}, "logit_bias.the.[key]", "invalid_type"),
    ({"logit_bias": {"5": 101}}, "logit_bias.5", "above_max_value"),
    ({"top_logprobs": 3}, "top_logprobs", "invalid_value"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "above_max_value"),
    ({"presence_penalty": 2.5}, "presence_penalty", "above_max_value"),
    ({"top_k": -2}, "top_k", "below_min_value"),
    ({"min_p": 1.5}, "min_p", "above_max_value"),
    ({"repeat_penalty": 0}, "repeat_penalty", "below_min_value"),
    ({"n": 2}, "n", "unsupported_value"),
    ({"audio": {"voice": "alloy", "format": "mp3"}}, "audio", "unsupported_parameter"),
    ({"modalities": ["text", "audio"]}, "modalities", "unsupported_value"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction", "unsupported_parameter"),
    ({"web_search_options": {}}, "web_search_options", "unsupported_parameter"),
    ({"reasoning_effort": "low"}, "reasoning_effort", "unsupported_parameter"),
    ({"verbosity": "low"}, "verbosity", "unsupported_parameter"),
    ({"service_tier": "flex"}, "service_tier", "unsupported_value"),
    ({"max_token": 5}, "max_token", "unknown_parameter"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_wether"}}}, "tool_choice", "invalid_value"),
    ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "tool_choice", "invalid_value"),
    ({"tools": [WEATHER], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice", "unsupported_value"),
    ({"functions": [WEATHER["function"]], "function_call": {"name": "nope"}}, "function_call", "invalid_value"),
    ({"functions": [WEATHER["function"]], "tools": [WEATHER]}, "functions", "invalid_value"),
])
def test_what_is_not_supported_is_refused_naming_the_parameter(app_client, extra, param, code):
    error = _envelope(app_client.post("/v1/chat/completions", json={**CHAT, **extra}), 400)
    assert (error["param"], error["code"]) == (param, code), error
    assert "Value error" not in error["message"]


def test_a_misspelt_parameter_gets_a_suggestion(app_client):
    error = _envelope(app_client.post("/v1/chat/completions", json={**CHAT, "max_token": 5}), 400)
    assert error["message"] == "Unrecognized request argument supplied: max_token; did you mean 'max_tokens'?"
    legacy = _envelope(app_client.post("/v1/completions", json={"model": "echo", "prompt": "x", "best_of": 2}), 400)
    assert legacy["param"] == "best_of"
    echoed = _envelope(app_client.post("/v1/completions", json={"model": "echo", "prompt": "x", "echo": True, "logprobs": 1}), 400)
    assert echoed["param"] == "logprobs"


def test_fields_clients_always_send_are_accepted(app_client):
    harmless = {
        "user": "u1", "metadata": {"team": "support"}, "store": False, "n": 1, "parallel_tool_calls": True,
        "stream_options": {"include_usage": True, "include_obfuscation": False}, "service_tier": "auto", "modalities": ["text"],
        "prompt_cache_key": "k", "safety_identifier": "s", "response_format": {"type": "text"}, "audio": None, "logprobs": False,
    }
    reply = app_client.post("/v1/chat/completions", json={**CHAT, **harmless})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "You said: one two three"


def test_deprecated_functions_are_answered_with_a_function_call(client):
    first = client.chat.completions.create(
        model="weather", messages=[{"role": "user", "content": "Weather in Paris?"}], functions=[WEATHER["function"]]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "function_call" and choice.message.tool_calls is None
    assert choice.message.function_call.name == "get_weather"
    assert json.loads(choice.message.function_call.arguments) == {"city": "Paris"}
    second = client.chat.completions.create(
        model="weather",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "function_call": choice.message.function_call.model_dump()},
            {"role": "function", "name": "get_weather", "content": "sunny, 21C"},
        ],
        functions=[WEATHER["function"]],
        function_call="auto",
    )
    assert second.choices[0].message.content == "Sunny in Paris." and second.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(
        model="weather", messages=[{"role": "user", "content": "Weather in Paris?"}], functions=[WEATHER["function"]],
        function_call={"name": "get_weather"}, stream=True,
    ))
    calls = [c.choices[0].delta.function_call for c in chunks if c.choices and c.choices[0].delta.function_call]
    assert [c.name for c in calls] == ["get_weather"] and chunks[-1].choices[0].finish_reason == "function_call"


def test_a_function_message_without_a_call_before_it_is_refused(app_client):
    body = {"model": "weather", "messages": [{"role": "function", "name": "f", "content": "x"}, {"role": "user", "content": "hi"}]}
    assert _envelope(app_client.post("/v1/chat/completions", json=body), 400)["param"] == "messages"


def test_completion_tokens_count_the_answer_not_the_gpts_own_tool_calls(make_app, write_spec):
    client = _calculator_gpt(make_app, write_spec, "Two and two make 4.")
    usage = client.post("/v1/chat/completions", json={"model": "calc", "messages": [{"role": "user", "content": "2+2?"}]}).json()["usage"]
    assert usage["completion_tokens"] == 5  # the fake model's tokens are words; its tool call (1 token) is not returned
    assert usage["prompt_tokens"] > 2 * 4  # both model calls read a prompt


def test_completion_tokens_count_the_text_a_guard_let_through(make_app, write_spec, gpts_dir):
    from fastapi.testclient import TestClient

    (gpts_dir / "kb").mkdir(parents=True)
    (gpts_dir / "kb" / "returns.md").write_text("# Returns\nShoes can be returned within 30 days.\n", encoding="utf-8")
    reply = "You have 90 days to send them back [1]."
    write_spec("acme", f"name: Acme\ninstructions: x\nmodel: {{provider: fake, options: {{replies: ['{reply}']}}}}\n"
                       "knowledge: {files: [kb/*.md], embedding_model: fake}\n")
    client = TestClient(make_app(ServerConfig()))
    reply = client.post("/v1/chat/completions", json={"model": "acme", "messages": [{"role": "user", "content": "returns?"}]}).json()
    assert reply["choices"][0]["message"]["content"] == "Shoes can be returned within 30 days. [1]"
    assert reply["usage"]["completion_tokens"] == 8  # the quote shown, not the 9 words the model wrote


def _smollm2_tokens(text: str) -> list[int]:
    """The embedded model's token ids for ``text``."""
    from gptbuilder.models.embedded import default_model_path
    from gptbuilder.models.llama_cpp import load_llama

    return load_llama(default_model_path(), n_ctx=4096).llm.tokenize(text.encode(), add_bos=False, special=False)


@pytest.mark.slow
def test_logprobs_and_logit_bias_on_the_embedded_model(make_app, live, write_spec):
    write_spec("smol", "name: Smol\ninstructions: You are a helpful assistant. Answer briefly.\n")
    client = openai.OpenAI(base_url=f"{live(make_app(ServerConfig())).url}/v1", api_key="unused", max_retries=0)
    ask = {"model": "smol", "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 16}
    reply = client.chat.completions.create(**ask, logprobs=True, top_logprobs=2)
    tokens = reply.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == reply.choices[0].message.content
    assert len(tokens) == reply.usage.completion_tokens and all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in tokens)
    chunks = list(client.chat.completions.create(**ask, logprobs=True, stream=True))
    streamed = [t.token for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert streamed == [t.token for t in tokens]
    first = _smollm2_tokens(tokens[0].token)[0]
    banned = client.chat.completions.create(**ask, logit_bias={str(first): -100}).choices[0].message.content
    assert not banned.startswith(tokens[0].token)
    with pytest.raises(openai.BadRequestError) as outside:
        client.chat.completions.create(**ask, logit_bias={"49152": 1})  # SmolLM2 has 49,152 tokens: ids 0-49151
    assert outside.value.body["param"] == "logit_bias" and "0 to 49151" in outside.value.message


@pytest.mark.slow
def test_a_tool_using_gpt_on_the_embedded_model_counts_only_its_answer(make_app, live, write_spec):
    write_spec("clock", "name: Clock\ninstructions: You are a helpful assistant. Use the tools when they help.\n"
                        "tools: [calculator, current_time]\nmodel: {max_tokens: 150}\n")
    client = openai.OpenAI(base_url=f"{live(make_app(ServerConfig())).url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model="clock", messages=[{"role": "user", "content": "current time in UTC?"}])
    message = reply.choices[0].message
    assert [s["name"] for s in message.model_extra["tool_steps"]] == ["current_time", "current_time"]  # the call, its result
    # The answer's own tokens (one either way: a re-tokenized text may merge two sampled tokens); before, the
    # tool call's JSON arguments were counted too.
    assert abs(reply.usage.completion_tokens - len(_smollm2_tokens(message.content))) <= 1
