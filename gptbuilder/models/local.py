"""What the in-process providers (llama.cpp, transformers) share: the chat model, the runtime cache, the provider.

A backend module adds only what is its own: how to load weights into a `Runtime`, how to `_decode`,
how to count tokens, and which `model.options` it takes.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Generator, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from pydantic import Field

from ..errors import ModelError
from .base import DEFAULT_MAX_TOKENS, Decoded, Piece, StreamingChatModel, final_chunk
from .options import OptionCheck, option_problems
from .registry import Provider
from .structured import answer_schema
from .tool_routing import ROUTING_OPTIONS, routing_fields

if TYPE_CHECKING:
    from ..spec import ModelConfig

SAMPLING_KEYS = (
    "temperature", "top_p", "max_tokens", "seed", "stop",
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
)
EXTENSION_KEYS = ("top_k", "min_p", "repeat_penalty")  # a request's; None leaves the backend's own setting
MESSAGE_OVERHEAD = 4  # role markers around each message in ChatML-style templates


@dataclass(kw_only=True)
class Runtime:
    """Loaded weights shared by every chat model over them; `lock` serialises generation on them."""

    lock: threading.Lock = field(default_factory=threading.Lock)


R = TypeVar("R", bound=Runtime)


class RuntimeCache(Generic[R]):
    """Runtimes by load key: each loaded once per process, loads serialised by one lock."""

    def __init__(self) -> None:
        self._runtimes: dict[Hashable, R] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], R]) -> R:
        """The runtime for ``key``, calling ``load`` (under the cache's lock) the first time."""
        with self._lock:
            if key not in self._runtimes:
                self._runtimes[key] = load()
            return self._runtimes[key]

    def clear(self) -> None:
        """Forget every runtime (benchmarks time a cold load this way)."""
        with self._lock:
            self._runtimes.clear()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._runtimes


class LocalChatModel(StreamingChatModel):
    """An in-process model: sampling settings (per-call kwargs override them) and tool calling.

    Backends implement `_decode` (text pieces for OpenAI-style messages, optionally held to a JSON
    schema), `context_window` and `count_message_tokens` (see base.LocalChatBackend); this class turns
    decoding into chat chunks, and plans tool turns (see tool_calling.plan_turn).
    """

    temperature: float = 0.2
    top_p: float = 0.95
    max_tokens: int = DEFAULT_MAX_TOKENS
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    presence_penalty: float = 0.0  # OpenAI's: subtracted from a token's logit once it has appeared in the answer
    frequency_penalty: float = 0.0  # OpenAI's: subtracted once per time it has appeared
    logit_bias: dict[int, float] = Field(default_factory=dict)
    logprobs: bool = False
    top_logprobs: int = 0
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    # Who decides between answering and calling a tool: "embedding" (a router; see tool_routing.py) or "model".
    tool_routing: str = "embedding"
    tool_route_threshold: float = 0.3
    # OpenAI's response_format: a json_object or json_schema answer is decoded under the schema's grammar.
    response_format: dict[str, Any] | None = None

    @property
    def context_window(self) -> int:
        """Tokens the model can attend to."""
        raise NotImplementedError

    def count_message_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """Tokens these messages take, with this model's tokenizer and chat template overhead."""
        return sum(self.count_text_tokens(m.text) + MESSAGE_OVERHEAD for m in messages)

    def count_text_tokens(self, text: str) -> int:
        """Tokens ``text`` takes with this model's tokenizer."""
        raise NotImplementedError

    def warm(self, messages: Sequence[BaseMessage], tools: Sequence[Any] = ()) -> None:
        """Do now what a first call would do lazily: load the weights and decode a token of ``messages``.

        With ``tools`` (OpenAI tool dicts) the tool router embeds their descriptions, and a token is decoded
        under each tool's grammar, as a turn would: one-time setup (a backend's first decode, a grammar
        compiled and cached) happens here rather than in a first request.
        """
        from langchain_core.messages.utils import convert_to_openai_messages

        from .tool_calling import plan_turn, tool_name
        from .tool_routing import default_router, latest_request

        chats: list[tuple[Any, dict[str, Any] | None]] = [(convert_to_openai_messages(list(messages), text_format="string"), None)]
        if tools:
            request = latest_request(messages)
            if self.tool_routing == "embedding" and request:
                default_router().route(tools, request, self.tool_route_threshold)
            choices: list[Any] = ["none", *({"type": "function", "function": {"name": tool_name(t)}} for t in tools)]
            choices += [] if self.tool_routing == "embedding" else ["auto"]  # the model chooses: the whole reply grammar
            chats = [(turn.messages, turn.schema) for turn in (plan_turn(tools, messages, choice) for choice in choices)]
        params = {**self.decode_params(None, {}), "max_tokens": 1, "logprobs": False}
        for chat, schema in chats:
            for _ in self._decode(chat, params, schema):
                pass

    def tool_choice_for(self, tools: Sequence[Any], messages: Sequence[BaseMessage], kwargs: dict[str, Any]) -> Any:
        """The tool choice to decode this turn with: after a tool result, an answer; else routed."""
        from langchain_core.messages import ToolMessage

        from .tool_routing import routed_choice

        if messages and isinstance(messages[-1], ToolMessage):
            return "none"  # small models loop on tools; once a result is in, the next reply is the answer
        mode = kwargs.get("tool_routing") or self.tool_routing
        return routed_choice(tools, messages, kwargs.get("tool_choice"), mode=mode, threshold=self.tool_route_threshold)

    def sampling_params(self, stop: list[str] | None, kwargs: dict[str, Any], extra_keys: tuple[str, ...] = ()) -> dict[str, Any]:
        """The instance's settings, overridden by non-None call kwargs, with call `stop` strings appended."""
        params: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
            "seed": self.seed,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "logit_bias": dict(self.logit_bias),
            "logprobs": self.logprobs,
            "top_logprobs": self.top_logprobs,
        }
        params.update({k: getattr(self, k) for k in EXTENSION_KEYS if getattr(self, k) is not None})
        params.update({k: v for k, v in kwargs.items() if k in SAMPLING_KEYS + EXTENSION_KEYS + extra_keys and v is not None})
        if isinstance(params["stop"], str):
            params["stop"] = [params["stop"]]
        params["stop"] = [s for s in [*params["stop"], *(stop or [])] if s]
        return params

    def _decode(
        self, chat: list[dict[str, Any]], params: dict[str, Any], schema: dict[str, Any] | None
    ) -> Generator[str | Piece, None, Decoded]:
        """Generate for OpenAI-style messages, yielding text pieces (Pieces with `logprobs`); ``schema`` constrains the output."""
        raise NotImplementedError

    def decode_params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The sampling parameters of one call."""
        return self.sampling_params(stop, kwargs)

    def check_json_schema(self, schema: dict[str, Any]) -> None:
        """Raise InputError unless answers can be held to ``schema`` (the backend compiles its grammar, once)."""
        raise NotImplementedError

    def model_name(self) -> str:
        """The name reported in response metadata."""
        return self._llm_type

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        from langchain_core.messages import AIMessageChunk
        from langchain_core.messages.utils import convert_to_openai_messages

        from .tool_calling import parse_arguments, parse_reply, plan_turn, reply_chunk

        params = self.decode_params(stop, kwargs)
        # Only the answer is held to it: tool calls keep their own schemas, and a tool loop runs as usual.
        answer = answer_schema(kwargs.get("response_format") or self.response_format)
        tools = kwargs.get("tools")
        turn = None
        if tools:
            choice = self.tool_choice_for(tools, messages, kwargs)
            turn = plan_turn(tools, messages, choice, constrained=kwargs.get("constrained", True), answer=answer)
        if turn is None or turn.kind == "answer":
            chat = turn.messages if turn else convert_to_openai_messages(messages, text_format="string")
            run = _Run(self._decode(chat, params, answer))
            for piece in run:
                text, logprobs = (piece.text, piece.logprobs) if isinstance(piece, Piece) else (piece, None)
                if run_manager:
                    run_manager.on_llm_new_token(text)
                metadata = {"logprobs": {"content": logprobs}} if logprobs else {}
                yield ChatGenerationChunk(message=AIMessageChunk(content=text, response_metadata=metadata))
            yield final_chunk(run.result.prompt_tokens, run.result.completion_tokens, run.result.finish_reason, self.model_name())
            return
        if turn.kind == "arguments" and "repeat_penalty" in params:
            # Arguments are mostly copied from the request; a repeat penalty garbles the copy ("sum((" -> "sum({").
            params = {**params, "repeat_penalty": 1.0}
        # A JSON reply is only meaningful once complete: collect it, then emit the parsed message.
        # The reply is JSON for the tool protocol, not text the caller sees: no log probabilities for it.
        run = _Run(self._decode(turn.messages, {**params, "logprobs": False}, turn.schema))
        text = "".join(piece.text if isinstance(piece, Piece) else piece for piece in run)
        message = parse_arguments(turn.tool, text) if turn.kind == "arguments" and turn.tool else parse_reply(text)
        finish_reason = "tool_calls" if message.tool_calls or message.invalid_tool_calls else run.result.finish_reason
        yield reply_chunk(message)
        yield final_chunk(run.result.prompt_tokens, run.result.completion_tokens, finish_reason, self.model_name())


class _Run:
    """Iterates a decoding generator and keeps the `Decoded` it returns."""

    def __init__(self, generator: Generator[str | Piece, None, Decoded]):
        self.generator = generator
        self.result = Decoded(0, 0, "stop")

    def __iter__(self) -> Iterator[str | Piece]:
        self.result = yield from self.generator


class LocalProvider(Provider):
    """A provider of in-process models: one way to check a spec, one way to turn it into chat-model fields.

    Subclasses set `options` (name -> value check, tool routing's added here), `requires` (modules that
    must be importable) with an `install_hint`, and implement `check_source` and `model_fields`.
    """

    options: ClassVar[Mapping[str, OptionCheck | None]] = {}
    requires: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""

    def known_options(self) -> dict[str, OptionCheck | None]:
        """This provider's options with the tool-routing ones every local model takes."""
        return {**self.options, **ROUTING_OPTIONS}

    def check_source(self, config: ModelConfig, base_dir: Path) -> None:
        """Raise ModelError unless `model.name` points at weights this provider can load (reads none)."""
        raise NotImplementedError

    def model_fields(self, config: ModelConfig, base_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
        """The backend's own chat-model fields; ``options`` holds the options not yet consumed."""
        raise NotImplementedError

    def build(self, **fields: Any) -> LocalChatModel:
        """The chat model for these fields."""
        raise NotImplementedError

    def create(self, config: ModelConfig, *, base_dir: Path) -> LocalChatModel:
        """Build the chat model; the weights load (once per process) on first use."""
        self.ensure_valid(config, base_dir=base_dir)
        options = dict(config.options)
        fields: dict[str, Any] = {
            **routing_fields(options),
            "stop": list(config.stop),
            "seed": config.seed,
        }
        fields.update(self.model_fields(config, base_dir, options))
        for key in ("temperature", "top_p", "max_tokens"):
            if getattr(config, key) is not None:
                fields[key] = getattr(config, key)
        return self.build(**fields)

    def check(self, config: ModelConfig, *, base_dir: Path) -> list[tuple[str, str]]:
        """The backend is installed, `model.name` points at loadable weights, the options are known and valid."""
        problems = []
        missing = [name for name in self.requires if importlib.util.find_spec(name) is None]
        if missing:
            problems.append(("provider", f"{' and '.join(missing)} not installed: `{self.install_hint}`"))
        try:
            self.check_source(config, base_dir)
        except ModelError as exc:
            problems.append(("name", str(exc)))
        problems.extend(option_problems(config.options, self.known_options(), self.name))
        return problems
