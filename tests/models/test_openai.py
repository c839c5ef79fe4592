"""`provider: openai` against a real OpenAI-compatible HTTP server on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from gptbuilder.agent import Agent, compile_agent
from gptbuilder.errors import ModelError, SpecError
from gptbuilder.events import Done, TextDelta, Usage
from gptbuilder.loader import load_spec
from gptbuilder.models.base import DEFAULT_REMOTE_CONTEXT_WINDOW
from gptbuilder.models.openai import ChatOpenAICompatible, provider
from gptbuilder.spec import ModelConfig
from tests.fake_openai_server import FakeOpenAIServer

KEY = "sk-test-key"
INSTRUCTIONS = "You are Acme's support assistant. Answer briefly."
FAST_BOUND_S = 5.0  # generous: each of these answers or fails in well under a second


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY, models={"gpt-test"}) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _no_ambient_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys come only from what a test sets; nothing is written outside tmp_path."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MY_KEY", raising=False)
    monkeypatch.setenv("GPTBUILDER_GPTS_DIR", str(tmp_path / "gpts"))
    monkeypatch.setenv("GPTBUILDER_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def openai_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write `gpts/<file>.yaml` with `provider: openai` and the given model fields."""

    def write(file: str = "remote", **model: Any) -> Path:
        model = {"provider": "openai", **model}
        path = tmp_path / "gpts" / f"{file}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: one flow mapping keeps every field exactly as given
        path.write_text(f"name: Remote\ninstructions: {json.dumps(INSTRUCTIONS)}\nmodel: {json.dumps(model)}\n", encoding="utf-8")
        return path

    return write


@pytest.fixture
def agent(server: FakeOpenAIServer, openai_spec, monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.setenv("MY_KEY", KEY)
    return compile_agent(load_spec(openai_spec(name="gpt-test", base_url=server.base_url, api_key_env="MY_KEY")))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- talking to the endpoint ---------------------------------------------------------------


def test_stream_yields_the_servers_text_in_order_then_done_with_its_usage(server, agent):
    server.finish_reason = "length"  # not the default, so it must have come from the server
    server.prompt_tokens, server.completion_tokens = 123, 45

    events = list(agent.stream("Hi"))

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", " there", ",", " friend", "."]
    assert isinstance(events[-1], Done) and sum(isinstance(e, Done) for e in events) == 1
    assert events[-1].text == "Hello there, friend."
    assert events[-1].finish_reason == "length"
    assert events[-1].usage == Usage(123, 45)
    [body] = server.chat_bodies
    assert body["model"] == "gpt-test"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_the_key_from_the_named_env_var_is_sent_as_bearer(server, agent):
    agent.chat("Hi")
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_chat_options_are_sent_in_the_request_body(server, agent):
    reply = agent.chat("Hi", max_tokens=7, temperature=0.3, top_p=0.5, seed=1, stop=["END", "###"])

    assert reply.text == "Hello there, friend."
    [body] = server.chat_bodies
    assert body["max_completion_tokens"] == 7
    assert "max_tokens" not in body  # one token limit, under today's name, never both
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.5
    assert body["seed"] == 1
    assert body["stop"] == ["END", "###"]


def test_spec_sampling_settings_are_sent(server, openai_spec, monkeypatch):
    monkeypatch.setenv("MY_KEY", KEY)
    path = openai_spec(
        name="gpt-test",
        base_url=server.base_url,
        api_key_env="MY_KEY",
        temperature=0.2,
        top_p=0.9,
        max_tokens=33,
        stop=["STOP"],
        seed=5,
    )
    agent = compile_agent(load_spec(path))

    agent.chat("Hi")
    agent.chat("Hi again", max_tokens=7, temperature=1.5)

    spec_body, call_body = server.chat_bodies
    assert (spec_body["temperature"], spec_body["top_p"], spec_body["seed"]) == (0.2, 0.9, 5)
    assert spec_body["max_completion_tokens"] == 33 and "max_tokens" not in spec_body
    assert spec_body["stop"] == ["STOP"]
    # per-call options win over the spec's, without leaving the spec's value under the old name
    assert call_body["max_completion_tokens"] == 7 and "max_tokens" not in call_body
    assert call_body["temperature"] == 1.5
    assert call_body["top_p"] == 0.9 and call_body["seed"] == 5


def test_unset_sampling_settings_are_not_sent(server, agent):
    agent.chat("Hi")
    [body] = server.chat_bodies
    assert not {"temperature", "top_p", "seed", "stop", "max_tokens", "max_completion_tokens"} & set(body)


def test_openai_sampling_options_are_passed_through(server, agent):
    options = {"presence_penalty": 0.5, "frequency_penalty": -1.0, "logit_bias": {42: -100.0}, "logprobs": True, "top_logprobs": 2}
    agent.chat("Hi", seed=9, **options)

    body = server.chat_bodies[-1]
    assert {key: body[key] for key in (*options, "seed")} == {**options, "logit_bias": {"42": -100.0}, "seed": 9}


def test_vllm_sampling_extensions_go_in_the_body(server, agent):
    agent.chat("Hi", top_k=40, min_p=0.05, repeat_penalty=1.2)
    body = server.chat_bodies[-1]
    assert {key: body[key] for key in ("top_k", "min_p", "repetition_penalty")} == {"top_k": 40, "min_p": 0.05, "repetition_penalty": 1.2}
    agent.chat("Hi")
    assert not {"top_k", "min_p", "repetition_penalty", "repeat_penalty"} & set(server.chat_bodies[-1])


def test_provider_options_headers_and_extra_body_are_sent(server, openai_spec, monkeypatch):
    monkeypatch.setenv("MY_KEY", KEY)
    path = openai_spec(
        name="gpt-test",
        base_url=server.base_url,
        api_key_env="MY_KEY",
        options={"headers": {"X-Team": "support"}, "extra_body": {"top_k": 20}},
    )
    compile_agent(load_spec(path)).chat("Hi")

    assert server.requests[-1].headers["x-team"] == "support"
    assert server.chat_bodies[-1]["top_k"] == 20


def test_the_instructions_are_the_first_message_the_server_receives(server, agent):
    agent.chat([("human", "Hi"), ("ai", "Hello! How can I help?"), ("human", "Where is my order?")])

    [body] = server.chat_bodies
    assert body["messages"][0] == {"role": "system", "content": INSTRUCTIONS}
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][-1]["content"] == "Where is my order?"


def test_non_streaming_invoke_reads_the_json_answer(server, agent):
    message = agent.model.invoke([HumanMessage("Hi")])

    assert isinstance(message, AIMessage)
    assert message.text == "Hello there, friend."
    assert message.usage_metadata["input_tokens"] == 42
    assert message.usage_metadata["output_tokens"] == 7
    assert message.response_metadata["finish_reason"] == "stop"
    assert "stream" not in server.chat_bodies[-1] or server.chat_bodies[-1]["stream"] is False


def test_async_stream_and_invoke_work_too(server, agent):
    async def run() -> tuple[str, str]:
        streamed = "".join([chunk.text async for chunk in agent.model.astream([HumanMessage("Hi")])])
        invoked = (await agent.model.ainvoke([HumanMessage("Hi")])).text
        return streamed, invoked

    assert asyncio.run(run()) == ("Hello there, friend.", "Hello there, friend.")


def test_the_context_window_comes_from_the_spec_or_a_remote_default(server, openai_spec, monkeypatch):
    monkeypatch.setenv("MY_KEY", KEY)
    plain = compile_agent(load_spec(openai_spec(name="gpt-test", base_url=server.base_url, api_key_env="MY_KEY")))
    sized = compile_agent(
        load_spec(openai_spec("sized", name="gpt-test", base_url=server.base_url, api_key_env="MY_KEY", context_window=4096))
    )
    assert isinstance(plain.model, ChatOpenAICompatible)
    assert plain.context_window == DEFAULT_REMOTE_CONTEXT_WINDOW
    assert sized.context_window == 4096 and sized.model.context_window == 4096


# --- keys ----------------------------------------------------------------------------------


def test_missing_key_env_var_is_named_at_compile_time(server, openai_spec):
    loaded = load_spec(openai_spec(name="gpt-test", base_url=server.base_url, api_key_env="MY_KEY"))

    with pytest.raises(ModelError, match="MY_KEY") as info:
        compile_agent(loaded)
    assert "not set" in str(info.value)
    assert server.requests == []


def test_empty_key_env_var_counts_as_missing(server, openai_spec, monkeypatch):
    monkeypatch.setenv("MY_KEY", "")
    with pytest.raises(ModelError, match="MY_KEY"):
        compile_agent(load_spec(openai_spec(name="gpt-test", base_url=server.base_url, api_key_env="MY_KEY")))


def test_a_local_server_needs_no_key(server, openai_spec):
    server.api_key = None  # like vLLM or Ollama: any key is accepted
    agent = compile_agent(load_spec(openai_spec(name="gpt-test", base_url=server.base_url)))

    assert agent.chat("Hi").text == "Hello there, friend."
    assert server.requests[-1].headers["authorization"].startswith("Bearer ")


def test_openai_api_key_is_used_when_no_env_var_is_named(server, openai_spec, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    agent = compile_agent(load_spec(openai_spec(name="gpt-test", base_url=server.base_url)))

    assert agent.chat("Hi").text == "Hello there, friend."
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_no_key_and_no_base_url_names_openai_api_key(openai_spec):
    loaded = load_spec(openai_spec(name="gpt-4o-mini"))
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        compile_agent(loaded)


def test_a_rejected_key_is_a_model_error_naming_401_and_the_env_var(server, openai_spec, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-wrong-key-123456")
    agent = compile_agent(load_spec(openai_spec(name="gpt-test", base_url=server.base_url, api_key_env="MY_KEY")))

    with pytest.raises(ModelError) as info:
        agent.chat("Hi")
    message = str(info.value)
    assert "401" in message and "MY_KEY" in message
    assert "Traceback" not in message
    assert "sk-wrong-key-123456" not in message  # the secret itself is never echoed
    assert len(server.chat_bodies) == 1  # 401 is not retried


def test_a_rejected_key_is_translated_on_every_code_path(server, openai_spec, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-wrong")
    model = compile_agent(load_spec(openai_spec(name="gpt-test", base_url=server.base_url, api_key_env="MY_KEY"))).model

    with pytest.raises(ModelError, match="401"):
        model.invoke([HumanMessage("Hi")])
    with pytest.raises(ModelError, match="401"):
        list(model.stream([HumanMessage("Hi")]))

    async def both_async_paths() -> None:  # one event loop: the async HTTP client is bound to it
        with pytest.raises(ModelError, match="401"):
            await model.ainvoke([HumanMessage("Hi")])
        with pytest.raises(ModelError, match="401"):
            async for _ in model.astream([HumanMessage("Hi")]):
                pass

    asyncio.run(both_async_paths())


# --- endpoints that fail -------------------------------------------------------------------


def test_an_unreachable_endpoint_fails_fast_with_cannot_reach(openai_spec):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    agent = compile_agent(load_spec(openai_spec(name="gpt-test", base_url=url, timeout=2, max_retries=0)))

    started = time.monotonic()
    with pytest.raises(ModelError, match="cannot reach") as info:
        agent.chat("Hi")
    assert time.monotonic() - started < FAST_BOUND_S
    assert url in str(info.value)
    assert "model.base_url" in str(info.value)


def test_an_unreachable_endpoint_says_why(openai_spec):
    """The low-level reason (refused, DNS, TLS) is what tells "server down" from "wrong host"."""
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    agent = compile_agent(load_spec(openai_spec(name="gpt-test", base_url=url, timeout=2, max_retries=0)))

    with pytest.raises(ModelError) as info:
        agent.chat("Hi")
    assert "refused" in str(info.value).lower()


def test_a_hanging_endpoint_times_out_with_a_model_error(server, openai_spec, monkeypatch):
    monkeypatch.setenv("MY_KEY", KEY)
    server.hang = 30
    path = openai_spec(name="gpt-test", base_url=server.base_url, api_key_env="MY_KEY", timeout=1, max_retries=0)
    agent = compile_agent(load_spec(path))

    started = time.monotonic()
    with pytest.raises(ModelError) as info:
        agent.chat("Hi")
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < FAST_BOUND_S
    assert "timeout" in str(info.value)
    assert server.base_url in str(info.value)
    assert len(server.chat_bodies) == 1  # max_retries: 0 means one try


def test_an_unknown_model_name_is_a_404_model_error_naming_it(server, openai_spec, monkeypatch):
    monkeypatch.setenv("MY_KEY", KEY)
    agent = compile_agent(load_spec(openai_spec(name="gpt-nope", base_url=server.base_url, api_key_env="MY_KEY")))

    with pytest.raises(ModelError) as info:
        agent.chat("Hi")
    assert "'gpt-nope'" in str(info.value) and "404" in str(info.value)
    assert "model.name" in str(info.value)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, "answered 500.*The server had an error"), (429, "rate limiting"), (400, "answered 400")],
)
def test_other_error_statuses_are_model_errors(server, openai_spec, monkeypatch, status, expected):
    monkeypatch.setenv("MY_KEY", KEY)
    server.fail_with = (status, "The server had an error while processing your request.")
    path = openai_spec(name="gpt-test", base_url=server.base_url, api_key_env="MY_KEY", max_retries=0)

    with pytest.raises(ModelError, match=expected):
        compile_agent(load_spec(path)).chat("Hi")


# --- spec checks ---------------------------------------------------------------------------


def test_missing_model_name_is_a_spec_error_and_a_create_error(tmp_path, openai_spec, server):
    with pytest.raises(SpecError) as info:
        load_spec(openai_spec(base_url=server.base_url))
    assert [p.field for p in info.value.problems] == ["model.name"]
    assert "gpt-4o-mini" in str(info.value)

    with pytest.raises(ModelError, match=r"model\.name"):
        provider.create(ModelConfig(provider="openai", base_url=server.base_url), base_dir=tmp_path)
    assert server.requests == []


def test_unknown_options_are_listed_in_the_spec_error(openai_spec, server):
    with pytest.raises(SpecError) as info:
        load_spec(openai_spec(name="gpt-test", base_url=server.base_url, options={"foo": 1, "bar": 2, "headers": {}}))
    [problem] = info.value.problems
    assert problem.field == "model.options"
    assert "bar, foo" in problem.message
    assert "headers" in problem.message  # the known ones are listed as the fix


def test_a_base_url_that_is_not_http_is_a_spec_error(openai_spec):
    with pytest.raises(SpecError) as info:
        load_spec(openai_spec(name="gpt-test", base_url="127.0.0.1:8000/v1"))
    assert [p.field for p in info.value.problems] == ["model.base_url"]
