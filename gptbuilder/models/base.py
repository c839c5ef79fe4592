"""The backend contract: what the agent may ask of a chat model, and the defaults behind it.

Every model a provider builds is a langchain-core `BaseChatModel` that also implements `ChatBackend`:
the context window it sees and a token count for messages. In-process backends additionally decode
(`LocalChatBackend`; see local.py for the shared implementation). `context_window_of` and
`count_tokens` are the only ways the agent asks; a plain langchain chat model handed to
`compile_agent` directly (tests, notebooks) gets the documented defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from typing_extensions import TypeIs

if TYPE_CHECKING:
    from ..spec import ModelConfig

DEFAULT_MAX_TOKENS = 512
# Tokens a model sees when neither the spec nor the model says: the embedded SmolLM2 runs with this many
# (llama.cpp allocates the whole KV cache up front, so in-process models get a small one).
DEFAULT_CONTEXT_WINDOW = 4096
# Remote endpoints allocate on their side and serve models with far larger windows; trimming a chat
# with gpt-4o-mini or a vLLM model to 4096 tokens would drop history for nothing, so they get more.
DEFAULT_REMOTE_CONTEXT_WINDOW = 16_384


@runtime_checkable
class ChatBackend(Protocol):
    """What the agent asks of every chat model besides langchain's own interface."""

    @property
    def context_window(self) -> int:
        """Tokens the model can attend to (prompt and answer together)."""
        ...

    def count_message_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """Tokens these messages take in this model's prompt (its tokenizer, or an estimate)."""
        ...


@dataclass(frozen=True)
class Piece:
    """Decoded text with its tokens' log probabilities, in OpenAI's `logprobs.content` shape (asked for with `logprobs`)."""

    text: str
    logprobs: list[dict[str, Any]]


@dataclass(frozen=True)
class Decoded:
    """What a backend reports after decoding: token counts and why it stopped."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@runtime_checkable
class LocalChatBackend(ChatBackend, Protocol):
    """An in-process model: it also decodes OpenAI-style messages itself, optionally held to a JSON schema."""

    def _decode(
        self, chat: list[dict[str, Any]], params: dict[str, Any], schema: dict[str, Any] | None
    ) -> Generator[str | Piece, None, Decoded]:
        """Yield text pieces (with their tokens' log probabilities when `params["logprobs"]`); return the token counts and finish reason."""
        ...

    def vocabulary_size(self) -> int:
        """How many token ids the model has (ids 0 to size - 1): what `logit_bias` may name."""
        ...


_MEMBERS = ("context_window", "count_message_tokens")


def is_chat_backend(model: object) -> TypeIs[ChatBackend]:
    """Whether ``model`` implements ChatBackend, without evaluating its attributes.

    Python 3.11's `isinstance(model, ChatBackend)` reads `context_window`, and for a local model that
    property loads the weights; a static lookup (what 3.12's isinstance does) only sees that it exists.
    """
    return _class_implements(type(model)) or all(inspect.getattr_static(model, name, None) is not None for name in _MEMBERS)


_classes_checked: dict[type, bool] = {}


def _class_implements(cls: type) -> bool:
    # Asked for every message the agent counts: one walk of the class (its pydantic fields included) per type.
    if cls not in _classes_checked:
        fields = getattr(cls, "model_fields", {})
        _classes_checked[cls] = all(name in fields or inspect.getattr_static(cls, name, None) is not None for name in _MEMBERS)
    return _classes_checked[cls]


def context_window_of(model: BaseChatModel, config: ModelConfig) -> int:
    """Tokens the model can attend to: the spec's value, else the backend's, else DEFAULT_CONTEXT_WINDOW."""
    if config.context_window:
        return config.context_window
    return model.context_window if is_chat_backend(model) else DEFAULT_CONTEXT_WINDOW


def count_tokens(model: BaseChatModel, messages: Sequence[BaseMessage]) -> int:
    """Tokens the messages take for this model: the backend's own count, else langchain's estimate."""
    if is_chat_backend(model):
        return model.count_message_tokens(messages)
    return approximate_tokens(messages)


def count_text_tokens(model: BaseChatModel, text: str) -> int:
    """Tokens ``text`` takes for this model: its tokenizer's count, else about one per four characters."""
    counter = getattr(model, "count_text_tokens", None)
    if callable(counter):
        return int(counter(text))
    return -(-len(text) // 4) if text else 0  # langchain's own estimate, without its per-message overhead


def vocabulary_size(model: BaseChatModel) -> int | None:
    """Token ids the model knows (0 to size - 1), or None where it cannot say (a remote endpoint checks its own)."""
    size = getattr(model, "vocabulary_size", None)
    return int(size()) if callable(size) else None


def approximate_tokens(messages: Sequence[BaseMessage]) -> int:
    """An estimate from characters, for backends without a local tokenizer (remote ones never download one)."""
    from langchain_core.messages.utils import count_tokens_approximately

    return count_tokens_approximately(messages)


class StreamingChatModel(BaseChatModel):
    """A chat model that implements langchain's `_stream` only; `_generate` collects it."""

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Runnable:
        """Bind tools as OpenAI tool dicts; the backend turns them into a constrained JSON reply."""
        from .tool_calling import openai_tools

        return self.bind(tools=openai_tools(tools), tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop=stop, run_manager=run_manager, **kwargs))


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


def check_json_schema(model: BaseChatModel, schema: dict[str, Any]) -> None:
    """Raise InputError unless the model can hold an answer to ``schema`` (a local one compiles its grammar, once)."""
    check = getattr(model, "check_json_schema", None)
    if callable(check):
        check(schema)
