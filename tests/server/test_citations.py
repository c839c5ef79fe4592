"""Sources clients show: a field (default), footnotes in the text too (inline), or none (off); Open WebUI's source events."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from gptbuilder.server import ServerConfig

ASK = [{"role": "user", "content": "returns?"}]
FOOTNOTES = "\n\nSources:\n[1]: kb/returns.md — Returns"


@pytest.fixture
def acme(write_spec, gpts_dir):
    (gpts_dir / "kb").mkdir()
    (gpts_dir / "kb" / "returns.md").write_text("# Returns\nShoes can be returned within 30 days.\n", encoding="utf-8")
    write_spec("acme", "name: Acme\ninstructions: x\nmodel: {provider: fake, options: {replies: ['30 days [1].']}}\n"
                       "knowledge: {files: [kb/*.md], embedding_model: fake}\n")


def serve(make_app, live, **config) -> tuple[str, openai.OpenAI]:
    server = live(make_app(ServerConfig(**config)))
    return server.url, openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def chunks(url: str, path: str, body: dict) -> list[dict]:
    with httpx.stream("POST", f"{url}/v1/{path}", json={**body, "stream": True}, timeout=30) as response:
        assert response.status_code == 200, response.read().decode()
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"]


def test_inline_citations_close_the_text_as_footnotes_and_stay_in_the_field(acme, make_app, live):
    url, client = serve(make_app, live)
    message = client.chat.completions.create(model="acme", messages=ASK, extra_body={"citations": "inline"}).choices[0].message
    assert message.content == "30 days [1]." + FOOTNOTES
    assert [c["number"] for c in message.model_extra["citations"]] == [1]
    streamed = [c for c in chunks(url, "chat/completions", {"model": "acme", "messages": ASK, "citations": "inline"}) if c["choices"]]
    texts = [c["choices"][0]["delta"].get("content") for c in streamed]
    assert texts[-2] == FOOTNOTES and streamed[-1]["choices"][0]["finish_reason"] == "stop", "the last delta before the end"
    assert "".join(t or "" for t in texts) == "30 days [1]." + FOOTNOTES
    legacy = client.completions.create(model="acme", prompt="returns?", extra_body={"citations": "inline"})
    assert legacy.choices[0].text == "30 days [1]." + FOOTNOTES


def test_a_streamed_source_also_rides_as_an_open_webui_source_event(acme, make_app, live):
    url, _ = serve(make_app, live)
    events = [c["event"] for c in chunks(url, "chat/completions", {"model": "acme", "messages": ASK}) if "event" in c]
    assert events == [{
        "type": "source",
        "data": {
            "source": {"id": "1", "name": "kb/returns.md — Returns"},
            "document": ["# Returns\nShoes can be returned within 30 days."],
            "metadata": [{"source": "kb/returns.md — Returns", "name": "kb/returns.md", "headings": ["Returns"], "start": 0, "end": 47}],
        },
    }]


def test_off_leaves_the_sources_out_and_the_server_default_applies_unless_a_request_says(acme, make_app, live):
    url, client = serve(make_app, live, citations="inline")
    assert client.chat.completions.create(model="acme", messages=ASK).choices[0].message.content == "30 days [1]." + FOOTNOTES
    field = client.chat.completions.create(model="acme", messages=ASK, extra_body={"citations": "field"}).choices[0].message
    assert field.content == "30 days [1]." and field.model_extra["citations"]
    off = client.chat.completions.create(model="acme", messages=ASK, extra_body={"citations": "off"}).choices[0].message
    assert off.content == "30 days [1]." and "citations" not in off.model_extra
    streamed = chunks(url, "chat/completions", {"model": "acme", "messages": ASK, "citations": "off"})
    assert not [c for c in streamed if "event" in c or (c["choices"] and "citations" in c["choices"][0]["delta"])]


def test_responses_take_the_same_option(acme, make_app, live):
    url, client = serve(make_app, live)
    response = client.responses.create(model="acme", input="returns?", extra_body={"citations": "inline"})
    assert response.output_text == "30 days [1]." + FOOTNOTES
    events = chunks(url, "responses", {"model": "acme", "input": "returns?", "citations": "inline"})
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert deltas[-1] == FOOTNOTES and events[-1]["response"]["citations"][0]["number"] == 1
    off = client.responses.create(model="acme", input="returns?", extra_body={"citations": "off"})
    assert off.output_text == "30 days [1]." and "citations" not in (off.model_extra or {})


def test_an_unknown_citations_mode_is_a_400_naming_it(acme, make_app, live):
    _, client = serve(make_app, live)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="acme", messages=ASK, extra_body={"citations": "footnotes"})
    assert refused.value.body["param"] == "citations"
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="acme", input="returns?", extra_body={"citations": True})
