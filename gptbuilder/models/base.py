"""What the in-process backends share: sampling fields, per-call overrides and the final usage chunk."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Decoded:
    """What a backend reports after decoding: token counts and why it stopped."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class LocalChatModel(StreamingChatModel):
    """An in-process model: sampling settings (per-call kwargs override them) and tool calling.

    Backends implement `_decode` (text pieces for OpenAI-style messages, optionally held to a JSON
    schema); this class turns that into chat chunks, and plans tool turns (see tool_calling.plan_turn).
    """

    temperature: float = 0.2
    top_p: float = 0.95
    max_tokens: int = DEFAULT_MAX_TOKENS
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    # Who decides between answering and calling a tool: "embedding" (a router; see tool_routing.py) or "model".
    tool_routing: str = "embedding"
    tool_route_threshold: float = 0.3

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
        }
        params.update({k: v for k, v in kwargs.items() if k in SAMPLING_KEYS + extra_keys and v is not None})
        if isinstance(params["stop"], str):
            params["stop"] = [params["stop"]]
        params["stop"] = [s for s in [*params["stop"], *(stop or [])] if s]
        return params

    def _decode(
        self, chat: list[dict[str, Any]], params: dict[str, Any], schema: dict[str, Any] | None
    ) -> Generator[str, None, Decoded]:
        """Generate for OpenAI-style messages, yielding text pieces; ``schema`` constrains the output."""
        raise NotImplementedError

    def decode_params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The sampling parameters of one call."""
        return self.sampling_params(stop, kwargs)

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
        from langchain_core.messages.utils import convert_to_openai_messages

        from .tool_calling import parse_arguments, parse_reply, plan_turn, reply_chunk

        params = self.decode_params(stop, kwargs)
        tools = kwargs.get("tools")
        turn = None
        if tools:
            choice = self.tool_choice_for(tools, messages, kwargs)
            turn = plan_turn(tools, messages, choice, constrained=kwargs.get("constrained", True))
        if turn is None or turn.kind == "answer":
            chat = turn.messages if turn else convert_to_openai_messages(messages, text_format="string")
            run = _Run(self._decode(chat, params, None))
            for text in run:
                if run_manager:
                    run_manager.on_llm_new_token(text)
                yield ChatGenerationChunk(message=AIMessageChunk(content=text))
            yield final_chunk(run.result.prompt_tokens, run.result.completion_tokens, run.result.finish_reason, self.model_name())
            return
        if turn.kind == "arguments" and "repeat_penalty" in params:
            # Arguments are mostly copied from the request; a repeat penalty garbles the copy ("sum((" -> "sum({").
            params = {**params, "repeat_penalty": 1.0}
        # A JSON reply is only meaningful once complete: collect it, then emit the parsed message.
        run = _Run(self._decode(turn.messages, params, turn.schema))
        text = "".join(run)
        message = parse_arguments(turn.tool, text) if turn.kind == "arguments" else parse_reply(text)
        finish_reason = "tool_calls" if message.tool_calls or message.invalid_tool_calls else run.result.finish_reason
        yield reply_chunk(message)
        yield final_chunk(run.result.prompt_tokens, run.result.completion_tokens, finish_reason, self.model_name())


class _Run:
    """Iterates a decoding generator and keeps the `Decoded` it returns."""

    def __init__(self, generator: Generator[str, None, Decoded]):
        self.generator = generator
        self.result = Decoded(0, 0, "stop")

    def __iter__(self) -> Iterator[str]:
        self.result = yield from self.generator


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
