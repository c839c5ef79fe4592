"""`provider: ollama` — a model served by Ollama, through its native /api/chat API (streamed NDJSON).

A whole gptbuilder model provider in one file: a langchain-core chat model that implements the
backend contract (`context_window`, `count_message_tokens`), and a provider that builds it from a
spec's `model:` section and checks that section cheaply for `gptbuilder validate`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.outputs import ChatGenerationChunk
from pydantic import Field

from gptbuilder.errors import ModelError
from gptbuilder.models.base import DEFAULT_CONTEXT_WINDOW, StreamingChatModel, approximate_tokens, final_chunk
from gptbuilder.models.options import number, option_problems
from gptbuilder.models.registry import Provider

if TYPE_CHECKING:
    from gptbuilder.spec import ModelConfig

DEFAULT_BASE_URL = "http://127.0.0.1:11434"
# `model.options` this provider takes, each with its check; they go into Ollama's `options` as they are.
OPTIONS = {"top_k": number(1, whole=True), "repeat_penalty": number(0), "num_gpu": number(0, whole=True)}
# The spec's sampling settings -> Ollama's names for them.
_RENAMED = {"max_tokens": "num_predict", "temperature": "temperature", "top_p": "top_p", "seed": "seed", "stop": "stop"}


class ChatOllama(StreamingChatModel):
    """A model on an Ollama server; text streams as Ollama writes it, tool calls arrive whole."""

    model: str
    base_url: str = DEFAULT_BASE_URL
    context_window: int = DEFAULT_CONTEXT_WINDOW
    timeout: float = 60.0
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    extra_options: dict[str, Any] = Field(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "ollama"

    def count_message_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """An estimate: Ollama's tokenizer lives on the server."""
        return approximate_tokens(messages)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        url = f"{self.base_url.rstrip('/')}/api/chat"
        body = self._request(messages, stop, kwargs)
        called = False
        try:
            with httpx.stream("POST", url, json=body, timeout=self.timeout) as response:
                if response.status_code != 200:
                    raise ModelError(f"{url} answered {response.status_code}: {_error(response.read())}")
                for line in filter(str.strip, response.iter_lines()):
                    event = json.loads(line)
                    if "error" in event:
                        raise ModelError(f"{url} failed: {event['error']}")
                    message = event.get("message") or {}
                    if message.get("content"):
                        if run_manager:
                            run_manager.on_llm_new_token(message["content"])
                        yield ChatGenerationChunk(message=AIMessageChunk(content=message["content"]))
                    if message.get("tool_calls"):
                        called = True
                        yield ChatGenerationChunk(message=_tool_calls(message["tool_calls"]))
                    if event.get("done"):
                        reason = "length" if event.get("done_reason") == "length" else "tool_calls" if called else "stop"
                        yield final_chunk(event.get("prompt_eval_count", 0), event.get("eval_count", 0), reason, self.model)
        except httpx.HTTPError as exc:
            raise ModelError(
                f"cannot reach Ollama at {self.base_url} ({type(exc).__name__}: {exc}); "
                "check model.base_url and that `ollama serve` is running"
            ) from exc
        except json.JSONDecodeError as exc:
            raise ModelError(f"{url} sent a line that is not JSON ({exc}); is model.base_url an Ollama server?") from exc

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The /api/chat body: the spec's settings, overridden by this call's."""
        settings = {key: getattr(self, key) for key in _RENAMED}
        settings.update({key: value for key, value in kwargs.items() if key in _RENAMED and value is not None})
        settings["stop"] = [*settings["stop"], *(stop or [])] or None
        options = {_RENAMED[key]: value for key, value in settings.items() if value is not None}
        chat = convert_to_openai_messages(messages, text_format="string")
        for message in chat:  # OpenAI sends tool arguments as JSON text, Ollama as an object
            for call in message.get("tool_calls", []):
                call["function"]["arguments"] = json.loads(call["function"]["arguments"] or "{}")
        options = {**self.extra_options, **options, "num_ctx": self.context_window}
        body = {"model": self.model, "messages": chat, "stream": True, "options": options}
        return {**body, "tools": kwargs["tools"]} if kwargs.get("tools") else body


def _tool_calls(calls: list[dict[str, Any]]) -> AIMessageChunk:
    """Ollama's tool calls (whole, arguments as an object) as langchain tool-call chunks."""
    chunks = []
    for index, call in enumerate(calls):
        arguments = json.dumps(call["function"].get("arguments") or {})
        call_id = call.get("id") or f"call_{uuid.uuid4().hex[:12]}"  # older Ollama versions send no id
        chunks.append(tool_call_chunk(name=call["function"]["name"], args=arguments, id=call_id, index=index))
    return AIMessageChunk(content="", tool_call_chunks=chunks)


def _error(body: bytes) -> str:
    """The message of Ollama's `{"error": ...}` body, else the body itself (shortened)."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", errors="replace")[:300]


class OllamaProvider(Provider):
    """`provider: ollama` — `model.name` is a model pulled into Ollama, `model.base_url` the server."""

    name = "ollama"

    def create(self, config: ModelConfig, *, base_dir: Path) -> ChatOllama:
        """Build the client; nothing is sent until the first message."""
        self.ensure_valid(config, base_dir=base_dir)
        return ChatOllama(
            model=config.name,
            base_url=config.base_url or DEFAULT_BASE_URL,
            context_window=config.context_window or DEFAULT_CONTEXT_WINDOW,
            timeout=config.timeout,
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens,
            seed=config.seed,
            stop=list(config.stop),
            extra_options={key: value for key, value in config.options.items() if value is not None},
        )

    def check(self, config: ModelConfig, *, base_dir: Path) -> list[tuple[str, str]]:
        """A model name is required; options must be known and valid. Nothing is sent."""
        problems = [] if config.name else [("name", "required for provider ollama: a pulled model, e.g. llama3.2")]
        return problems + option_problems(config.options, OPTIONS, self.name)


provider = OllamaProvider()
