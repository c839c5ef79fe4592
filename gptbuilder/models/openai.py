"""Any OpenAI-compatible endpoint (OpenAI, Azure OpenAI v1, vLLM, Ollama, llama.cpp server) via langchain-openai."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_openai import ChatOpenAI

from ..errors import ModelError
from .base import DEFAULT_REMOTE_CONTEXT_WINDOW, approximate_tokens
from .options import expect, option_problems
from .registry import Provider

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import ChatGenerationChunk, ChatResult

    from ..spec import ModelConfig

NO_KEY = "sk-no-key-needed"  # local servers (vLLM, Ollama, llama.cpp) accept any key
_OPTIONS = {
    "headers": expect(
        lambda value: isinstance(value, dict) and all(isinstance(v, str) for v in value.values()),
        "a mapping of header names to texts",
    ),
    "organization": expect(lambda value: isinstance(value, str), "a text"),
    "extra_body": expect(lambda value: isinstance(value, dict), "a mapping of request fields"),
}


class ChatOpenAICompatible(ChatOpenAI):
    """ChatOpenAI as a ChatBackend, whose failures arrive as ModelError naming the endpoint and the fix."""

    context_window: int = DEFAULT_REMOTE_CONTEXT_WINDOW
    api_key_env: str | None = None
    response_format: dict[str, Any] | None = None  # a turn's structured output, when its tool loop copies the model
    # vLLM's and llama.cpp's sampling extensions a request may set; sent in the body (vLLM's names), so an
    # endpoint that does not take them says so, rather than having them dropped here
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None

    def count_message_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """An estimate: the endpoint's tokenizer is not here (and ChatOpenAI's own counter downloads tiktoken's)."""
        return approximate_tokens(messages)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except ModelError:
            raise
        except Exception as exc:
            raise _model_error(exc, self) from exc

    def _rename(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if "max_tokens" in kwargs:  # our option name; the wire field set by this class is max_completion_tokens
            kwargs["max_completion_tokens"] = kwargs.pop("max_tokens")
        extensions = {}
        for name, wire in (("top_k", "top_k"), ("min_p", "min_p"), ("repeat_penalty", "repetition_penalty")):
            value = kwargs.pop(name, None)
            value = getattr(self, name) if value is None else value
            if value is not None:
                extensions[wire] = value
        if extensions:
            kwargs["extra_body"] = {**(self.extra_body or {}), **(kwargs.get("extra_body") or {}), **extensions}
        response_format = kwargs.pop("response_format", None) or self.response_format
        if isinstance(response_format, dict):
            # Sent as is, in the body: given as an argument, ChatOpenAI streams through the SDK's parse helper,
            # which refuses tools that are not strict and counts the usage twice.
            kwargs["extra_body"] = {**(self.extra_body or {}), **(kwargs.get("extra_body") or {}), "response_format": response_format}
        elif response_format is not None:
            kwargs["response_format"] = response_format  # a pydantic class from langchain's own with_structured_output
        return kwargs

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        with self._translated():
            return super()._generate(messages, stop=stop, run_manager=run_manager, **self._rename(kwargs))

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        with self._translated():
            yield from super()._stream(messages, stop=stop, run_manager=run_manager, **self._rename(kwargs))

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        with self._translated():
            return await super()._agenerate(messages, stop=stop, run_manager=run_manager, **self._rename(kwargs))

    async def _astream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        with self._translated():
            async for chunk in super()._astream(messages, stop=stop, run_manager=run_manager, **self._rename(kwargs)):
                yield chunk


def _model_error(exc: Exception, model: ChatOpenAICompatible) -> ModelError:
    import openai

    endpoint = model.openai_api_base or "https://api.openai.com/v1"
    if isinstance(exc, openai.APITimeoutError):
        return ModelError(f"the model endpoint {endpoint} did not answer within {model.request_timeout}s (model.timeout)")
    if isinstance(exc, openai.APIConnectionError):
        cause: BaseException = exc
        while isinstance(cause, openai.APIConnectionError) and cause.__cause__ is not None:
            cause = cause.__cause__  # langchain-openai wraps the transport error more than once
        return ModelError(
            f"cannot reach the model endpoint {endpoint} ({type(cause).__name__}: {cause}); "
            "check model.base_url and that the server is running"
        )
    if isinstance(exc, openai.AuthenticationError):
        where = f"the key in ${model.api_key_env}" if model.api_key_env else "the API key"
        return ModelError(f"{endpoint} rejected {where} (401); check model.api_key_env")
    if isinstance(exc, openai.NotFoundError):
        return ModelError(f"{endpoint} has no model {model.model_name!r} (404); check model.name")
    if isinstance(exc, openai.RateLimitError):
        return ModelError(f"{endpoint} is rate limiting requests (429); try again later")
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("message") or (body.get("error") or {}).get("message") if body else None
        return ModelError(f"{endpoint} answered {exc.status_code}: {detail or exc.message}")
    return ModelError(f"the model at {endpoint} failed: {type(exc).__name__}: {exc}")


def _api_key(config: ModelConfig) -> str:
    if config.api_key_env:
        key = os.environ.get(config.api_key_env)
        if not key:
            raise ModelError(
                f"environment variable {config.api_key_env} is not set; it must hold the API key for "
                f"{config.base_url or 'OpenAI'} (model.api_key_env)"
            )
        return key
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if config.base_url:
        return NO_KEY
    raise ModelError(
        "environment variable OPENAI_API_KEY is not set; set it, or name another one in model.api_key_env, "
        "or point model.base_url at a server that needs no key"
    )


class OpenAIProvider(Provider):
    """`provider: openai` — native tool calling, streaming usage, the key from a named env var."""

    name = "openai"

    def create(self, config: ModelConfig, *, base_dir: Path) -> ChatOpenAICompatible:
        """Build the client; nothing is sent until the first message."""
        self.ensure_valid(config, base_dir=base_dir)
        options = config.options
        fields: dict[str, Any] = {
            "model": config.name,
            "api_key": _api_key(config),
            "api_key_env": config.api_key_env,
            "base_url": config.base_url,
            "timeout": config.timeout,
            "max_retries": config.max_retries,
            "stream_usage": True,
            "context_window": config.context_window or DEFAULT_REMOTE_CONTEXT_WINDOW,
        }
        optional = {
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_completion_tokens": config.max_tokens,
            "stop_sequences": list(config.stop) or None,
            "seed": config.seed,
            "default_headers": options.get("headers"),
            "organization": options.get("organization"),
            "extra_body": options.get("extra_body"),
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
        return ChatOpenAICompatible(**fields)

    def check(self, config: ModelConfig, *, base_dir: Path) -> list[tuple[str, str]]:
        """A model name is required; options must be known ones."""
        problems = []
        if not config.name:
            problems.append(("name", "required for provider openai: the model's name on the endpoint, e.g. gpt-4o-mini"))
        problems.extend(option_problems(config.options, _OPTIONS, self.name))
        return problems


provider = OpenAIProvider()
