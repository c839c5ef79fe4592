"""What the in-process backends share: sampling fields, per-call overrides and the final usage chunk."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import Field

from .registry import DEFAULT_MAX_TOKENS

SAMPLING_KEYS = ("temperature", "top_p", "max_tokens", "seed", "stop")


class StreamingChatModel(BaseChatModel):
    """A chat model that implements `_stream` only; `_generate` collects it."""

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Runnable:
        """Bind tools as OpenAI tool dicts; the backend turns them into a constrained JSON reply."""
        from .tool_calling import openai_tools

        return self.bind(tools=openai_tools(tools), tool_choice=tool_choice, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        raise NotImplementedError

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop=stop, run_manager=run_manager, **kwargs))


class LocalChatModel(StreamingChatModel):
    """Sampling settings of an in-process model; per-call keyword arguments override them."""

    temperature: float = 0.2
    top_p: float = 0.95
    max_tokens: int = DEFAULT_MAX_TOKENS
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None

    def sampling_params(self, stop: list[str] | None, kwargs: dict[str, Any], extra_keys: tuple[str, ...] = ()) -> dict[str, Any]:
        """The instance's settings, overridden by non-None call kwargs, with call `stop` strings appended."""
        params: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
            "seed": self.seed,
        }
        params.update({k: v for k, v in kwargs.items() if k in SAMPLING_KEYS + extra_keys and v is not None})
        if isinstance(params["stop"], str):
            params["stop"] = [params["stop"]]
        params["stop"] = [s for s in [*params["stop"], *(stop or [])] if s]
        return params


def final_chunk(prompt_tokens: int, completion_tokens: int, finish_reason: str, model_name: str) -> ChatGenerationChunk:
    """The empty last chunk carrying token usage and why generation stopped."""
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            usage_metadata={
                "input_tokens": prompt_tokens,
                "output_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            response_metadata={"finish_reason": finish_reason, "model_name": model_name},
        ),
        generation_info={"finish_reason": finish_reason},
    )
