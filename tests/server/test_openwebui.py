"""Open WebUI's chat, replayed: its built-in tools ride on every request, against the shipped acme-support GPT.

The request shape (seven tool schemas, `stream: true`, the fields around them) is in
tests/fixtures/openwebui/chat_request.json, with where it comes from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from gptbuilder.server import ServerConfig
from tests.test_agent_tools import orders  # noqa: F401 - the demo orders service, as a fixture

REPO = Path(__file__).resolve().parents[2]
REQUEST = json.loads((REPO / "tests" / "fixtures" / "openwebui" / "chat_request.json").read_text(encoding="utf-8"))
OPENWEBUI_TOOLS = {tool["function"]["name"] for tool in REQUEST["tools"]}


def call(name: str, **arguments: Any) -> str:
    return json.dumps({"type": "tool_call", "name": name, "arguments": arguments})


def acme_support(gpts_dir: Path, replies: list[str] | None = None) -> None:
    """The shipped acme-support GPT, its knowledge beside it; with ``replies``, on the fake model and embedder.

    The fake embedder's vectors mean nothing, so there it answers when no passage matches rather than refusing.
    """
    text = (REPO / "gpts" / "acme-support.yaml").read_text(encoding="utf-8")
    if replies is not None:
        fake = f"model:\n  provider: fake\n  options:\n    replies: {json.dumps(replies)}\n  max_tokens: 200\n"
        text = text.replace("model:\n  max_tokens: 200\n", fake)
        text = text.replace("  on_no_match: refuse\n", "  on_no_match: answer\n  embedding_model: fake\n")
        assert "provider: fake" in text and "embedding_model: fake" in text, "the shipped spec changed shape"
    (gpts_dir / "acme-support.yaml").write_text(text, encoding="utf-8")
    shutil.copytree(REPO / "gpts" / "knowledge" / "acme-support", gpts_dir / "knowledge" / "acme-support")


def openwebui_body(messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Open WebUI's chat request for acme-support: its fields, its seven tools, these messages (default: the fixture's)."""
    body = {**REQUEST["body"], "model": "acme-support", "tools": REQUEST["tools"]}
    return {**body, "messages": messages} if messages is not None else body


def stream_chat(url: str, body: dict[str, Any]) -> tuple[httpx.Headers, list[dict[str, Any]]]:
    """POST a streamed chat as Open WebUI does (raw SSE); the headers and every `data:` chunk before [DONE]."""
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200, response.read().decode()
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return response.headers, [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def answered(chunks: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]], list[str]]:
    """The streamed text, the client tool calls and the finish reasons."""
    choices = [chunk["choices"][0] for chunk in chunks if chunk.get("choices")]
    assert not [chunk for chunk in chunks if "error" in chunk], chunks
    text = "".join(choice["delta"].get("content") or "" for choice in choices)
    calls = [call for choice in choices for call in choice["delta"].get("tool_calls") or []]
    return text, calls, [choice["finish_reason"] for choice in choices if choice["finish_reason"]]


def test_open_webui_chats_with_a_gpt_that_runs_its_own_tools(gpts_dir, orders, make_app, live):
    acme_support(gpts_dir, [call("getOrder", order_id="A1001"), "Your order A1001 is on its way."])
    server = live(make_app(ServerConfig()))
    headers, chunks = stream_chat(server.url, openwebui_body())
    text, calls, finish = answered(chunks)
    assert text == "Your order A1001 is on its way." and calls == [] and finish == ["stop"]
    steps = [step for chunk in chunks if chunk.get("choices") for step in chunk["choices"][0]["delta"].get("tool_steps", [])]
    assert [(step["type"], step["name"]) for step in steps] == [("tool_call", "getOrder"), ("tool_result", "getOrder")]
    assert "/orders/A1001" in orders.raw_paths, "the GPT's own tool ran on the server"
    assert chunks[-1]["usage"]["completion_tokens"] > 0, "stream_options.include_usage is honoured"
    assert "x-gptbuilder-shadowed-tools" not in headers


def test_open_webui_runs_its_own_tool_and_the_answer_goes_on_from_its_result(gpts_dir, orders, make_app, live):
    acme_support(gpts_dir, [call("get_current_timestamp"), "Here is the time you asked for."])
    server = live(make_app(ServerConfig()))
    _, chunks = stream_chat(server.url, openwebui_body())
    text, calls, finish = answered(chunks)
    assert [c["function"]["name"] for c in calls] == ["get_current_timestamp"] and finish == ["tool_calls"]
    assert json.loads(calls[0]["function"]["arguments"]) == {} and calls[0]["id"]
    # Open WebUI runs the tool, then sends the conversation back with the call and its result.
    follow_up = [
        *REQUEST["body"]["messages"][:1],
        {"role": "user", "content": "Where is my order A1001?"},
        {"role": "assistant", "content": text, "tool_calls": [{k: v for k, v in calls[0].items() if k != "index"}]},
        {"role": "tool", "tool_call_id": calls[0]["id"],
         "content": [{"type": "text", "text": '{"current_timestamp": 1795000000}', "cache_control": {"type": "ephemeral"}}]},
    ]
    _, chunks = stream_chat(server.url, openwebui_body(follow_up))
    text, calls, finish = answered(chunks)
    assert (text, calls, finish) == ("Here is the time you asked for.", [], ["stop"])
    assert orders.raw_paths == [], "the timestamp was Open WebUI's to fetch; no order tool ran"


@pytest.mark.slow
def test_open_webui_on_the_embedded_model_gets_a_streamed_answer(gpts_dir, orders, make_app, live):
    """The real SmolLM2 routing between the GPT's order tools and Open WebUI's seven: an answer or a call, never an error."""
    acme_support(gpts_dir)
    server = live(make_app(ServerConfig()))
    _, chunks = stream_chat(server.url, openwebui_body())
    text, calls, finish = answered(chunks)
    assert finish in (["stop"], ["length"], ["tool_calls"]), finish
    assert text.strip() or calls
    assert all(c["function"]["name"] in OPENWEBUI_TOOLS for c in calls), "only Open WebUI's tools come back to it"
