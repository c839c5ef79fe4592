"""The README's "Adding a model provider" example, as a real plugin: a GPT on it chats through a stand-in Ollama."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.messages.utils import count_tokens_approximately
from typer.testing import CliRunner

from gptbuilder.agent import compile_agent
from gptbuilder.cli import app
from gptbuilder.errors import ModelError, SpecError
from gptbuilder.events import Done, TextDelta, ToolCall, ToolResult
from gptbuilder.loader import load_spec
from gptbuilder.models import registry
from gptbuilder.models.base import DEFAULT_CONTEXT_WINDOW, count_tokens, is_chat_backend
from gptbuilder.spec import ModelConfig
from tests.plugins import gptbuilder_ollama
from tests.plugins.gptbuilder_ollama import ChatOllama, provider
from tests.plugins.ollama_stand_in import OllamaStandIn

REPO = Path(__file__).resolve().parents[2]
PLUGIN = Path(gptbuilder_ollama.__file__)


@pytest.fixture
def ollama() -> Iterator[OllamaStandIn]:
    server = OllamaStandIn().start()
    yield server
    server.close()


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The plugin registered at run time, as a notebook or a test would."""
    monkeypatch.setattr(registry, "_loaded", {})
    registry.register_provider(provider)
    yield
    registry.unregister_provider("ollama")


@pytest.fixture
def spec(write_spec: Callable[..., Path], ollama: OllamaStandIn) -> Callable[..., Path]:
    """Write a GPT whose model is `provider: ollama` on the stand-in server."""

    def write(model: str = "", tools: str = "") -> Path:
        text = (
            "name: Ollama Bot\ninstructions: Answer in French.\n"
            f"model: {{provider: ollama, name: llama3.2, base_url: '{ollama.base_url}'{model}}}\n{tools}"
        )
        return write_spec("ollama-bot", text)

    return write


def _readme_example() -> str:
    section = (REPO / "README.md").read_text(encoding="utf-8").split("### Adding a model provider", 1)[1]
    found = re.search(r"^```python\n(.*?)^```$", section, flags=re.DOTALL | re.MULTILINE)
    assert found, "the README's 'Adding a model provider' section has no python block"
    return found.group(1)


def test_the_readme_example_is_this_plugin():
    assert _readme_example() == PLUGIN.read_text(encoding="utf-8"), (
        f"the README's provider example and {PLUGIN.relative_to(REPO)} must be the same code: copy one into the other"
    )


def test_the_plugin_is_one_file_of_about_150_lines():
    assert len(PLUGIN.read_text(encoding="utf-8").splitlines()) <= 180


def test_a_gpt_on_the_plugin_chats_through_the_server(registered, spec, ollama):
    path = spec(", temperature: 0.3, max_tokens: 64, context_window: 8192, options: {top_k: 20, num_gpu: 1}")
    agent = compile_agent(load_spec(path))

    assert isinstance(agent.model, ChatOllama)
    reply = agent.chat("Hello!")

    assert reply.text == "Bonjour from the stand-in."
    assert reply.finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (31, 5)  # as the server counted them
    [body] = ollama.requests
    assert body["model"] == "llama3.2" and body["stream"] is True and "tools" not in body
    assert body["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert body["messages"][-1] == {"role": "user", "content": "Hello!"}
    assert body["options"] == {"top_k": 20, "num_gpu": 1, "temperature": 0.3, "num_predict": 64, "num_ctx": 8192}


def test_per_request_settings_override_the_specs(registered, spec, ollama):
    agent = compile_agent(load_spec(spec(", temperature: 0.3, stop: [END]")))
    text = "".join(e.text for e in agent.stream("Hi", temperature=0.9, max_tokens=5) if isinstance(e, TextDelta))
    assert text == "Bonjour from the stand-in."
    assert ollama.requests[0]["options"] == {"temperature": 0.9, "num_predict": 5, "stop": ["END"], "num_ctx": 4096}
    assert ollama.requests[0]["options"]["num_ctx"] == DEFAULT_CONTEXT_WINDOW


def test_the_plugin_runs_a_gpts_tools_with_native_tool_calls(registered, spec, ollama):
    ollama.replies = [
        [[{"function": {"name": "calculator", "arguments": {"expression": "1299 * 0.8"}}}]],
        ["That is 1039.2."],
    ]
    agent = compile_agent(load_spec(spec(tools="tools: [calculator]\n")))

    events = list(agent.stream("What is 1299 * 0.8?"))

    [call] = [e for e in events if isinstance(e, ToolCall)]
    [result] = [e for e in events if isinstance(e, ToolResult)]
    assert (call.name, call.arguments) == ("calculator", {"expression": "1299 * 0.8"})
    assert "1039.2" in result.content and not result.error
    done = events[-1]
    assert isinstance(done, Done) and (done.text, done.finish_reason) == ("That is 1039.2.", "stop")
    first, second = ollama.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["calculator"]
    assistant, tool = second["messages"][-2:]
    assert assistant["tool_calls"][0]["function"]["arguments"] == {"expression": "1299 * 0.8"}  # an object, not text
    assert tool["role"] == "tool" and "1039.2" in tool["content"]


def test_the_plugins_model_implements_the_backend_contract(registered, tmp_path, ollama):
    model = registry.create_model(
        ModelConfig(provider="ollama", name="llama3.2", base_url=ollama.base_url, context_window=2048), base_dir=tmp_path
    )
    assert is_chat_backend(model) and model.context_window == 2048
    messages = [HumanMessage("one two three")]
    assert count_tokens(model, messages) == count_tokens_approximately(messages) > 0
    assert ollama.requests == []  # building and counting send nothing


def test_validate_reports_the_plugins_problems(registered, write_spec):
    write_spec("bad", "name: Bad\ninstructions: x\nmodel: {provider: ollama, options: {top_k: 0, temprature: 1}}\n")

    result = CliRunner().invoke(app, ["validate"])

    assert result.exit_code == 1
    assert "model.name: required for provider ollama" in result.stderr
    assert "model.options: unknown option(s) for provider ollama: temprature" in result.stderr
    assert "model.options.top_k: 0 is not a whole number of at least 1" in result.stderr
    with pytest.raises(SpecError, match=r"model\.options\.top_k"):
        load_spec(write_spec("bad", "name: Bad\ninstructions: x\nmodel: {provider: ollama, name: m, options: {top_k: 0}}\n"))


def test_server_failures_are_model_errors_naming_the_fix(registered, tmp_path, ollama):
    def model(base_url: str) -> ChatOllama:
        return provider.create(ModelConfig(provider="ollama", name="nope", base_url=base_url, timeout=5), base_dir=tmp_path)

    ollama.replies = [(404, 'model "nope" not found, try pulling it first')]
    with pytest.raises(ModelError, match=r'/api/chat answered 404: model "nope" not found, try pulling it first'):
        model(ollama.base_url).invoke("hi")
    ollama.replies = [b"<html>Welcome to nginx!</html>\n"]
    with pytest.raises(ModelError, match=r"/api/chat sent a line that is not JSON .*is model.base_url an Ollama server\?"):
        model(ollama.base_url).invoke("hi")
    closed = OllamaStandIn()
    closed.close()  # a port nothing listens on
    with pytest.raises(ModelError, match=r"cannot reach Ollama at .*check model.base_url and that `ollama serve` is running"):
        model(closed.base_url).invoke("hi")


def test_the_entry_point_in_the_readme_loads_the_same_provider(monkeypatch, spec):
    """What `[project.entry-points."gptbuilder.models"]` in the plugin's pyproject.toml declares."""
    monkeypatch.setattr(registry, "_loaded", {})
    real = registry._entry_points
    point = EntryPoint("ollama", f"{gptbuilder_ollama.__name__}:provider", registry.GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {**real(), "ollama": point})

    assert "ollama" in registry.provider_names()
    assert registry.get_provider("ollama") is provider
    assert compile_agent(load_spec(spec())).chat("Salut").text == "Bonjour from the stand-in."
