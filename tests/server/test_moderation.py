"""Moderation over HTTP: `/v1/moderations`, the `moderation` field of chat, streams and responses, and /metrics."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from gptbuilder.moderation import MODERATION_ENV
from gptbuilder.server import ServerConfig
from tests.server.conftest import ECHO, live, make_app  # noqa: F401

KEY = "sk-moderation-key"
REFUSAL = "I won't go there."
ANSWER = "Sure. " + "Plenty of harmless words first, to fill the window up. " * 3 + "Now, you idiot, more words follow here."
GUARDED = f"""
name: Guarded
instructions: Be brief.
model: {{provider: fake, options: {{replies: ["{ANSWER}"]}}}}
moderation: {{blocklist: [idiot], patterns: {{ticket: 'TCK-\\d{{4}}'}}, pii: block, refusal: "{REFUSAL}"}}
"""


@pytest.fixture
def default_file(tmp_path, monkeypatch):
    path = tmp_path / "moderation.yaml"
    path.write_text("blocklist: [scam]\npii: mask\n", encoding="utf-8")
    monkeypatch.setenv(MODERATION_ENV, str(path))
    return path


@pytest.fixture
def client(make_app, write_spec, default_file):
    write_spec("echo", ECHO)
    write_spec("guarded", GUARDED)
    with TestClient(make_app(ServerConfig(api_keys=(KEY,)))) as test_client:
        test_client.headers["Authorization"] = f"Bearer {KEY}"
        yield test_client


def test_moderations_use_the_server_default_or_a_named_gpts_checks(client):
    reply = client.post("/v1/moderations", json={"input": ["a scam, mail bob@example.com", "hello there"]}).json()
    assert reply["id"].startswith("modr-") and reply["model"] == "gptbuilder-moderation"
    flagged, clean = reply["results"]
    assert flagged["flagged"] and not clean["flagged"]
    assert flagged["categories"]["blocklist"] and flagged["categories"]["pii/email"] and not flagged["categories"]["hate"]
    assert flagged["category_scores"]["pii/email"] == 1.0 and clean["category_scores"]["blocklist"] == 0.0
    assert [(f["category"], f["action"]) for f in flagged["findings"]] == [("blocklist", "blocked"), ("pii/email", "masked")]
    gpt = client.post("/v1/moderations", json={"model": "guarded", "input": "see TCK-1234"}).json()
    assert gpt["model"] == "guarded" and gpt["results"][0]["categories"]["pattern/ticket"]
    echo = client.post("/v1/moderations", json={"model": "echo", "input": "a scam"}).json()
    assert echo["results"][0]["flagged"]  # no moderation of its own: the server's default


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": []}, 400, "input"),
        ({"input": [{"type": "image_url", "image_url": {"url": "http://x"}}]}, 400, "input[0]"),
        ({"input": "x" * 100_001}, 400, "input"),
        ({"input": 7}, 400, "input"),
        ({"input": "hi", "model": "guardd"}, 404, "model"),
    ],
)
def test_bad_moderation_requests_are_errors_in_the_envelope(client, body, status, param):
    response = client.post("/v1/moderations", json=body)
    assert response.status_code == status
    assert response.json()["error"]["param"] == param


def test_moderations_need_a_key(client):
    assert client.post("/v1/moderations", json={"input": "hi"}, headers={"Authorization": ""}).status_code == 401


def chat(client, model: str, text: str):
    return client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}]}).json()


def test_a_blocked_chat_says_why_and_is_counted(client):
    reply = chat(client, "guarded", "my card is 4111 1111 1111 1111")
    choice = reply["choices"][0]
    assert choice["message"]["content"] == REFUSAL and choice["finish_reason"] == "content_filter"
    assert choice["message"]["moderation"] == [{"side": "input", "check": "pii", "category": "card", "action": "blocked"}]
    masked = chat(client, "echo", "I am bob@example.com")
    assert masked["choices"][0]["message"]["content"] == "You said: I am [email]"
    assert masked["choices"][0]["message"]["moderation"][0]["action"] == "masked"
    metrics = client.get("/metrics").text
    assert 'gptbuilder_moderated_turns_total{action="blocked",check="pii",side="input"} 1.0' in metrics
    assert 'gptbuilder_moderated_turns_total{action="masked",check="pii",side="input"} 1.0' in metrics


def test_a_streamed_answer_is_stopped_and_the_stream_carries_the_moderation(client):
    body = {"model": "guarded", "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert "idiot" not in text and text.endswith(REFUSAL) and text.startswith("Sure. Plenty")
    marks = [c["choices"][0]["delta"]["moderation"] for c in chunks if c["choices"] and "moderation" in c["choices"][0]["delta"]]
    assert marks == [[{"side": "output", "check": "blocklist", "category": "blocklist", "action": "blocked"}]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"


def test_responses_and_legacy_completions_carry_the_moderation(client):
    response = client.post("/v1/responses", json={"model": "guarded", "input": "idiot"}).json()
    assert response["status"] == "incomplete" and response["moderation"][0]["side"] == "input"
    completion = client.post("/v1/completions", json={"model": "guarded", "prompt": "idiot"}).json()
    assert completion["choices"][0]["text"] == REFUSAL and completion["choices"][0]["moderation"][0]["check"] == "blocklist"


def test_a_broken_default_file_stops_the_server_from_starting(make_app, write_spec, default_file):
    from gptbuilder.errors import SpecError

    default_file.write_text("patterns: {x: '('}\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"patterns\.x: invalid regular expression"):
        make_app()


def test_the_openai_sdk_moderates_and_sees_a_streamed_answer_stopped(make_app, live, write_spec, default_file):
    write_spec("guarded", GUARDED)
    server = live(make_app(ServerConfig(api_keys=(KEY,))))
    assert httpx.get(f"{server.url}/ready", headers={"Authorization": f"Bearer {KEY}"}, timeout=30).status_code == 200
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    result = client.moderations.create(input="this is a scam").results[0]
    assert result.flagged and result.categories.model_extra["blocklist"] and not result.categories.hate
    assert client.moderations.create(model="guarded", input="TCK-0001").results[0].categories.model_extra["pattern/ticket"]
    stream = client.chat.completions.create(model="guarded", messages=[{"role": "user", "content": "hi"}], stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "idiot" not in text and text.endswith(REFUSAL) and chunks[-1].choices[0].finish_reason == "content_filter"
    assert any((c.choices[0].delta.model_extra or {}).get("moderation") for c in chunks if c.choices)
