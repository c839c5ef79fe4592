"""MCP servers as a GPT's tools: the test server (tests/fixtures/mcp/server.py) as a real stdio subprocess and
over real streamable HTTP on loopback, and every way a server can misbehave: not starting, hanging, dying,
answering 10 MB, sitting at a private address."""

from __future__ import annotations

import gc
import importlib.util
import json
import socket
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from gptbuilder.agent import compile_agent
from gptbuilder.errors import SpecError, ToolError
from gptbuilder.events import ConfirmationRequest, ToolResult, Transcript
from gptbuilder.loader import check_spec, load_spec
from gptbuilder.spec import MCPServerConfig
from gptbuilder.tools.compile import build_tools
from gptbuilder.tools.mcp import mcp_tools

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mcp"
SERVER = [sys.executable, "server.py"]
TEN_MB = 10_000_000


def stdio(*extra: str, **options: Any) -> MCPServerConfig:
    """The test server as a command (run in tests/fixtures/mcp)."""
    return MCPServerConfig(command=[*SERVER, *extra], **options)


def tools_of(config: MCPServerConfig, *, allow_private: bool = False, **options: Any) -> dict[str, Any]:
    return {tool.name: tool for tool in mcp_tools(config, folder=FIXTURES, allow_private=allow_private, **options)}


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, Any]]:
    """One stdio server for the tests that leave it healthy (starting one takes a second or two)."""
    yield tools_of(stdio(timeout=20))


class HTTPServer:
    """The test server's streamable-HTTP app under uvicorn on a loopback port (its lifespan runs the SDK's manager)."""

    def __init__(self) -> None:
        spec = importlib.util.spec_from_file_location("mcp_test_server", FIXTURES / "server.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        self.server = uvicorn.Server(uvicorn.Config(module.http_app(), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the MCP test server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def http() -> Iterator[HTTPServer]:
    served = HTTPServer()
    yield served
    served.stop()


def invoke(tool: Any, **arguments: Any) -> str:
    """Call a tool as the agent's tools node does: failures come back as the text the model reads."""
    return tool.invoke({"type": "tool_call", "id": "c1", "name": tool.name, "args": arguments}).content


# -- a healthy server --------------------------------------------------------------------------------------


def test_each_tool_of_a_stdio_server_becomes_a_tool(server):
    assert {"add", "create_note", "big", "hang", "crash", "env", "fail", "header"} <= set(server)
    assert invoke(server["add"], a=2, b=3) == "5"
    assert server["add"].description == "Add two whole numbers."
    assert server["add"].args["a"]["type"] == "integer"


def test_tools_not_marked_read_only_need_approval(server):
    assert server["create_note"].metadata["requires_confirmation"] is True
    assert server["add"].metadata["requires_confirmation"] is False
    assert server["add"].metadata["mcp_tool"] == "add" and "server.py" in server["add"].metadata["mcp_server"]


def test_a_tool_error_goes_back_to_the_model(server):
    assert invoke(server["fail"], reason="no such order").startswith("fail failed: ")
    refused = invoke(server["add"], a="two", b=3)
    assert refused.startswith("add failed: ") and "valid integer" in refused


def test_a_long_result_is_truncated_with_a_note(server):
    text = invoke(server["big"], size=100_000)
    assert len(text) <= 8_000 and text.endswith("[truncated: 100,000 characters, showing the first 7,932]")


def test_the_command_gets_only_the_environment_it_is_given(monkeypatch):
    monkeypatch.setenv("GPTBUILDER_API_KEYS", "sk-secret")
    monkeypatch.setenv("NOTES_TOKEN", "t0ken")
    tools = tools_of(stdio(env={"MODE": "test"}, pass_env=["NOTES_TOKEN"], tools=["env"]))
    assert list(tools) == ["env"]
    assert invoke(tools["env"], name="GPTBUILDER_API_KEYS") == "<unset>"  # gptbuilder's own secrets stay home
    assert invoke(tools["env"], name="NOTES_TOKEN") == "t0ken"
    assert invoke(tools["env"], name="MODE") == "test"
    monkeypatch.delenv("NOTES_TOKEN")
    with pytest.raises(ToolError, match=r"NOTES_TOKEN \(mcp.pass_env\) is not set"):
        tools_of(stdio(pass_env=["NOTES_TOKEN"]))


def test_allow_list_prefix_and_confirm():
    tools = tools_of(stdio(tools=["add", "create_note"], prefix="notes_", confirm=["add"]))
    assert set(tools) == {"notes_add", "notes_create_note"}
    assert tools["notes_add"].metadata["requires_confirmation"] is True  # named in confirm
    assert tools["notes_create_note"].metadata["requires_confirmation"] is False  # confirm lists all that need it
    assert invoke(tools["notes_add"], a=1, b=1) == "2"  # the server is asked by its own name
    with pytest.raises(ToolError, match=r"mcp.tools names 'ad', which the server does not offer \(its tools: add, big"):
        tools_of(stdio(tools=["ad"]))


# -- servers that misbehave ------------------------------------------------------------------------------


def test_a_server_that_fails_to_start_is_named_with_its_last_words():
    with pytest.raises(ToolError) as failed:
        tools_of(stdio("--fail-at-start"))
    message = str(failed.value)
    assert "server.py --fail-at-start could not be started: it exited with status 2" in message
    assert "cannot open the database: /nonexistent/db.sqlite" in message  # its stderr


def test_a_missing_program_is_named():
    with pytest.raises(ToolError, match="'no-such-mcp-server' was not found"):
        tools_of(MCPServerConfig(command=["no-such-mcp-server", "--stdio"]))


def test_a_server_that_never_answers_at_start_times_out():
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"server.py --silent did not start within 1 s \(mcp.timeout\)"):
        tools_of(stdio("--silent", timeout=1))
    assert time.monotonic() - started < 6  # the timeout, then a second's grace before the kill


def test_a_call_that_hangs_times_out_and_the_server_starts_afresh():
    tools = tools_of(stdio(timeout=3))
    started = time.monotonic()
    text = invoke(tools["hang"])
    assert time.monotonic() - started < 8
    assert text.startswith("hang did not answer within 3 s (mcp.timeout)") and "started again" in text
    assert invoke(tools["add"], a=1, b=2) == "3"


def test_a_server_that_dies_mid_call_is_reported_and_restarted():
    tools = tools_of(stdio())
    text = invoke(tools["crash"])
    assert text.startswith("crash failed: the MCP server ") and "stopped: it exited with status 3" in text
    assert invoke(tools["add"], a=1, b=2) == "3"


def test_ten_megabytes_over_stdio_are_refused_without_holding_them(server):
    tracemalloc.start()
    try:
        text = invoke(server["big"], size=TEN_MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert text == ("big failed: the MCP server's answer is over the 1,000,000-byte limit (mcp.max_response_bytes) "
                    "and was dropped; ask for less")
    assert peak < 4 * 1_000_000  # streamed past, never buffered whole
    assert invoke(server["add"], a=2, b=2) == "4"  # the same connection carries on


def test_the_server_stops_with_its_tools():
    tools = tools_of(stdio(tools=["pid"]))
    pid = int(invoke(tools["pid"]))
    assert _alive(pid)
    del tools
    gc.collect()
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, "the MCP server outlived its tools"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


# -- streamable HTTP --------------------------------------------------------------------------------------


def test_a_url_at_a_private_address_is_refused(http):
    with pytest.raises(ToolError, match=r"refused to connect to 127.0.0.1: it is a loopback address; private networks "
                                        r"are off unless the GPT sets allow_private_network: true"):
        tools_of(MCPServerConfig(url=http.url))
    for url in ("http://10.1.2.3/mcp", "http://169.254.169.254/mcp", "http://[::1]:8080/mcp"):
        with pytest.raises(ToolError, match="refused to connect"):
            tools_of(MCPServerConfig(url=url, timeout=2))
    with pytest.raises(ToolError, match="cloud metadata"):  # even where private networks are allowed
        tools_of(MCPServerConfig(url="http://169.254.169.254/mcp", timeout=2), allow_private=True)


def test_an_http_server_with_headers_and_auth(http):
    tools = tools_of(MCPServerConfig(url=http.url, headers={"X-Team": "support"},
                                     auth={"type": "bearer", "token_env": "NOTES_TOKEN"}),
                     allow_private=True, environ={"NOTES_TOKEN": "s3cret"})
    assert invoke(tools["add"], a=20, b=22) == "42"
    assert invoke(tools["header"], name="authorization") == "Bearer s3cret"
    assert invoke(tools["header"], name="x-team") == "support"
    assert tools["create_note"].metadata["requires_confirmation"] is True
    with pytest.raises(ToolError, match="NOTES_TOKEN"):
        tools_of(MCPServerConfig(url=http.url, auth={"type": "bearer", "token_env": "NOTES_TOKEN"}),
                 allow_private=True, environ={})


def test_ten_megabytes_over_http_are_cut_off(http):
    tools = tools_of(MCPServerConfig(url=http.url, tools=["big", "add"]), allow_private=True)
    text = invoke(tools["big"], size=TEN_MB)
    assert text.startswith("big failed: ") and "1000000 byte limit" in text
    assert invoke(tools["add"], a=1, b=1) == "2"


def test_an_http_call_that_hangs_times_out(http):
    tools = tools_of(MCPServerConfig(url=http.url, tools=["hang", "add"], timeout=2), allow_private=True)
    started = time.monotonic()
    assert invoke(tools["hang"], seconds=6).startswith("hang did not answer within 2 s")
    assert time.monotonic() - started < 5
    assert invoke(tools["add"], a=1, b=1) == "2"


def test_an_http_server_that_is_not_there():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ToolError, match=rf"MCP server http://127.0.0.1:{port}/mcp could not be started: cannot reach it"):
        tools_of(MCPServerConfig(url=f"http://127.0.0.1:{port}/mcp", timeout=3), allow_private=True)


# -- in a spec ---------------------------------------------------------------------------------------------


def _spec(write_spec: Callable[..., Path], gpts_dir: Path, tools: str, *, replies: list[str] | None = None,
          extra: str = "") -> Path:
    (gpts_dir / "server.py").write_text((FIXTURES / "server.py").read_text(encoding="utf-8"), encoding="utf-8")
    model = f"{{provider: fake, options: {{replies: {json.dumps(replies)}}}}}" if replies else "{provider: fake}"
    return write_spec("notes", f"name: Notes\ninstructions: Use the tools.\nmodel: {model}\n{extra}tools:\n{tools}")


def test_a_gpt_calls_an_mcp_tool_and_asks_before_a_consequential_one(write_spec, gpts_dir):
    add = json.dumps({"type": "tool_call", "name": "add", "arguments": {"a": 19, "b": 23}})
    note = json.dumps({"type": "tool_call", "name": "create_note", "arguments": {"text": "call Bob"}})
    path = _spec(write_spec, gpts_dir, f"  - mcp: {{command: [{sys.executable}, server.py], tools: [add, create_note]}}\n",
                 replies=[add, "The sum is 42.", note])
    agent = compile_agent(load_spec(path))
    transcript = Transcript.from_events(agent.stream("What is 19 + 23?"))
    [result] = [step for step in transcript.steps if isinstance(step, ToolResult)]
    assert (result.name, result.content, result.error) == ("add", "42", False)
    assert transcript.text == "The sum is 42."
    paused = Transcript.from_events(agent.stream("Note: call Bob"))
    assert [type(step) for step in paused.steps] == [ConfirmationRequest]
    assert paused.done.finish_reason == "confirmation_required"


def test_validate_checks_the_command_and_url_without_starting_anything(write_spec, gpts_dir):
    path = _spec(write_spec, gpts_dir, "  - mcp: {command: [no-such-mcp-server]}\n"
                                       "  - mcp: {url: 'http://127.0.0.1:9/mcp'}\n"
                                       "  - mcp: {url: 'https://mcp.example.com/mcp', auth: {type: bearer}}\n"
                                       "  - mcp: {command: [python], url: 'https://mcp.example.com/mcp'}\n")
    report = check_spec(path, deep=True)
    messages = {(p.field, p.message) for p in report.errors}
    fields = {field for field, _ in messages}
    assert "tools[0].mcp.command" in fields and any("'no-such-mcp-server' is not a program" in m for _, m in messages)
    assert any(f == "tools[1].mcp.url" and "loopback" in m and "allow_private_network" in m for f, m in messages)
    assert any(f == "tools[2].mcp.auth.token_env" for f, _ in messages)
    assert any("exactly one of 'command'" in m for _, m in messages)


def test_a_spec_saved_through_the_store_may_not_run_a_command(write_spec, gpts_dir, monkeypatch):
    path = _spec(write_spec, gpts_dir, f"  - mcp: {{command: [{sys.executable}, server.py]}}\n"
                                       "  - mcp: {url: 'https://mcp.example.com/mcp', auth: {type: bearer, token_env: NOTES_TOKEN}}\n")
    with pytest.raises(SpecError) as refused:
        load_spec(path, trusted=False)
    problems = {p.field: p.message for p in refused.value.problems}
    assert "MCP servers run as a command" in problems["tools[0]"] and "url" in problems["tools[0]"]
    assert "NOTES_TOKEN is not allowed" in problems["tools[1].mcp.auth.token_env"]
    # and compiling never starts one, even for a spec that slipped past the loader
    loaded = load_spec(path)
    object.__setattr__(loaded, "trusted", False)
    with pytest.raises(ToolError, match=r"tools\[0\]: MCP servers run as commands are not allowed"):
        build_tools(loaded)


def test_a_store_spec_reaches_urls_only_through_the_guard(write_spec, gpts_dir, http):
    path = _spec(write_spec, gpts_dir, f"  - mcp: {{url: '{http.url.replace('127.0.0.1', 'localhost')}'}}\n")
    report = check_spec(path, trusted=False)
    assert any(p.field == "tools[0].mcp.url" and "loopback" in p.message for p in report.errors)


def test_every_connection_is_vetted_so_dns_rebinding_finds_nothing(http, monkeypatch):
    """A name that first resolves to a public address, then to loopback, never gets a connection to loopback."""
    port = int(http.url.split(":")[2].split("/")[0])
    answers = iter(["93.184.216.34"])
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host != "mcp.rebind.test":
            return real(host, *args, **kwargs)
        address = next(answers, "127.0.0.1")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(ToolError, match=r"could not be started: refused to connect to mcp.rebind.test \(127.0.0.1\)"):
        tools_of(MCPServerConfig(url=f"http://mcp.rebind.test:{port}/mcp", timeout=3))
