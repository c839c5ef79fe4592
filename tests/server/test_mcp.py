"""`/mcp` on a live `gptbuilder serve`: a real MCP client (the SDK's ClientSession over streamable HTTP) asks GPTs."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client

from gptbuilder.db import Database
from gptbuilder.history import History
from gptbuilder.server import ServerConfig
from gptbuilder.server.mcp import TOOL_PREFIX
from tests.server.conftest import ECHO, live, make_app  # noqa: F401

KEY, OTHER = "user-key-1", "user-key-2"
ACME = (
    "name: Acme Support\ndescription: Returns and shipping.\ninstructions: x\n"
    "model: {provider: fake, options: {replies: ['Shoes can be returned within 30 days [1].', 'Yes, for 30 days [1].']}}\n"
    "knowledge: {files: [kb/*.md], embedding_model: fake, answer_mode: generate}\n"
)
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


def session_with(url: str, key: str | None, body: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    """Run ``body`` with an initialized MCP session to ``url`` sending ``key`` as a Bearer token."""

    async def main() -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as client, streamable_http_client(
            url, http_client=client
        ) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await body(session)

    return anyio.run(main)


@pytest.fixture
def served(make_app, live, write_spec, gpts_dir):
    """A keyed server with an echo GPT and a GPT answering from a knowledge file."""
    (gpts_dir / "kb").mkdir()
    (gpts_dir / "kb" / "returns.md").write_text("# Returns\nShoes can be returned within 30 days.\n", encoding="utf-8")
    write_spec("echo", ECHO)
    write_spec("acme", ACME)
    write_spec("broken", "name: Broken\ninstructions: x\nmodel: {provider: nope}\n")
    return live(make_app(ServerConfig(api_keys=(KEY, OTHER))))


def test_each_valid_gpt_is_a_tool_and_answers_with_its_sources(served):
    async def body(session: ClientSession) -> Any:
        listed = await session.list_tools()
        first = await session.call_tool("ask_acme", {"message": "How long do I have to return shoes?"})
        follow = await session.call_tool("ask_acme", {"message": "Really?",
                                                      "conversation": first.structured_content["conversation"]})
        return listed, first, follow

    listed, first, follow = session_with(f"{served.url}/mcp", KEY, body)
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == {"ask_acme", "ask_echo"}  # the broken spec is no tool
    assert tools["ask_acme"].input_schema["required"] == ["message"]
    assert "Returns and shipping." in tools["ask_acme"].description
    assert not first.is_error
    text = first.content[0].text
    assert text.startswith("Shoes can be returned within 30 days [1].")
    assert "Sources:\n[1] " in text and "returns.md" in text
    structured = first.structured_content
    assert structured["answer"] == "Shoes can be returned within 30 days [1]."
    assert structured["sources"][0]["source"].endswith("returns.md") and structured["sources"][0]["cited"] is True
    assert f"conversation: {structured['conversation']}" in text
    assert follow.structured_content["conversation"] == structured["conversation"]
    assert follow.structured_content["answer"] == "Yes, for 30 days [1]."


def test_a_follow_up_sees_the_conversation_so_far(served, tmp_path):
    async def body(session: ClientSession) -> Any:
        first = await session.call_tool("ask_echo", {"message": "my name is Ada"})
        second = await session.call_tool("ask_echo", {"message": "and yours?",
                                                      "conversation": first.structured_content["conversation"]})
        return first, second

    first, second = session_with(f"{served.url}/mcp", KEY, body)
    assert first.structured_content["answer"] == "You said: my name is Ada"
    assert second.structured_content["answer"] == "You said: and yours?"
    stored = History(Database.for_data_dir(tmp_path / "data"))  # make_app's database
    conversation = stored.get(first.structured_content["conversation"])
    assert (conversation.channel, conversation.gpt_id) == ("mcp", "echo")
    assert [m.role for m in stored.messages(conversation.id)] == ["user", "assistant", "user", "assistant"]


def test_another_key_cannot_continue_a_conversation(served):
    started = session_with(f"{served.url}/mcp", KEY, lambda s: s.call_tool("ask_echo", {"message": "secret plan"}))
    conversation = started.structured_content["conversation"]
    stolen = session_with(f"{served.url}/mcp", OTHER,
                          lambda s: s.call_tool("ask_echo", {"message": "what did I say?", "conversation": conversation}))
    assert stolen.is_error and f"no conversation {conversation!r} of yours" in stolen.content[0].text
    elsewhere = session_with(f"{served.url}/mcp", KEY,
                             lambda s: s.call_tool("ask_acme", {"message": "hi", "conversation": conversation}))
    assert elsewhere.is_error  # a conversation belongs to one GPT


def test_bad_calls_are_tool_errors_not_crashes(served):
    async def body(session: ClientSession) -> list[Any]:
        return [
            await session.call_tool("ask_nobody", {"message": "hi"}),
            await session.call_tool("ask_broken", {"message": "hi"}),
            await session.call_tool("delete_everything", {"message": "hi"}),
            await session.call_tool("ask_echo", {"message": "   "}),
            await session.call_tool("ask_echo", {"message": "hi", "extra": 1}),
            await session.call_tool("ask_echo", {"message": "x" * 100_001}),
        ]

    unknown, broken, stranger, blank, extra, too_long = session_with(f"{served.url}/mcp", KEY, body)
    assert all(result.is_error for result in (unknown, broken, stranger, blank, extra, too_long))
    assert "nobody" in unknown.content[0].text
    assert "nope" in broken.content[0].text  # the spec's own problem, named
    assert "ask_<gpt id>" in stranger.content[0].text
    assert "non-empty" in blank.content[0].text or "message" in blank.content[0].text
    assert "100,000" in too_long.content[0].text


def test_mcp_needs_a_key_like_the_api(served):
    with httpx.Client(timeout=10) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = client.post(f"{served.url}/mcp", json=INIT,
                                  headers={**headers, "Accept": "application/json, text/event-stream"})
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] in ("missing_api_key", "invalid_api_key")
        let_in = client.post(f"{served.url}/mcp", json=INIT, headers={
            "Authorization": f"Bearer {KEY}", "Accept": "application/json, text/event-stream"})
        assert let_in.status_code == 200 and let_in.json()["result"]["serverInfo"]["name"] == "gptbuilder"
        cross_site = client.post(f"{served.url}/mcp", json=INIT, headers={
            "Authorization": f"Bearer {KEY}", "Origin": "https://evil.example", "Accept": "application/json, text/event-stream"})
        assert cross_site.status_code == 403


def test_a_session_without_a_key_is_refused(served):
    with pytest.raises(BaseExceptionGroup) as failed:  # the SDK turns the 401 into an error answering initialize
        session_with(f"{served.url}/mcp", None, lambda s: s.list_tools())
    assert failed.group_contains(MCPError, match="error response", depth=2)


def test_a_keyless_server_answers_on_loopback(make_app, live, write_spec):
    write_spec("echo", ECHO)
    server = live(make_app(ServerConfig()))
    result = session_with(f"{server.url}/mcp", None, lambda s: s.call_tool(f"{TOOL_PREFIX}echo", {"message": "hello"}))
    assert result.structured_content["answer"] == "You said: hello"
    assert json.loads(json.dumps(result.structured_content))["sources"] == []
