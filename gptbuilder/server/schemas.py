"""Request bodies of the OpenAI-compatible API (pydantic at the edge), and their translation for the agent."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import APIError


def lone_surrogate_at(value: Any, where: str = "") -> str | None:
    """Where in a decoded JSON value a string holds a lone UTF-16 surrogate ("\\ud800"), or None.

    JSON may escape half a surrogate pair; Python decodes it into a string that cannot be encoded,
    which failed later (database, tokenizer) as a 500.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "the body"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = lone_surrogate_at(key, where) or lone_surrogate_at(item, f"{where}.{key}".lstrip("."))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = lone_surrogate_at(item, f"{where}.{index}".lstrip("."))
            if found:
                return found
    return None


class RequestBody(BaseModel):
    """A JSON request body: unknown fields ignored, text that is not valid Unicode refused."""

    # Clients send many optional OpenAI fields (logprobs, penalties, metadata…); unknown ones are ignored.
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        where = lone_surrogate_at(data)
        if where:
            raise ValueError(f"{where} holds a lone UTF-16 surrogate (half of an escaped pair); send valid Unicode text")
        return data


class FunctionDef(BaseModel):
    """A client-side function the model may call."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = Field("", max_length=4000)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolDef(BaseModel):
    """`{"type": "function", "function": {...}}`."""

    type: Literal["function"] = "function"
    function: FunctionDef


class ChatMessage(RequestBody):
    """One message: string or content-part content; tool calls and results for client-side tools."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text; content parts other than text are refused."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts = []
        for part in self.content:
            kind = part.get("type")
            if kind in ("text", "input_text") and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise APIError(
                    400, f"content parts of type {kind!r} are not supported; send text parts", param="messages"
                )
        return "\n".join(texts)

    def to_agent(self) -> dict[str, Any]:
        """The OpenAI-style dict the agent's message conversion reads."""
        role = "system" if self.role == "developer" else self.role
        message: dict[str, Any] = {"role": role, "content": self.text()}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        if self.role == "tool":
            if not self.tool_call_id:
                raise APIError(400, "a tool message needs 'tool_call_id'", param="messages")
            message["tool_call_id"] = self.tool_call_id
        return message


class StreamOptions(RequestBody):
    """`stream_options`: whether a last chunk carries the usage."""

    include_usage: bool = False


class _Sampling(RequestBody):
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = Field(None, max_length=256)
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        if n is not None and n != 1:
            raise ValueError("only n=1 is supported: each request returns one choice; send several requests instead")
        return n

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences")
        return stop

    def stop_list(self) -> list[str] | None:
        """Stop sequences as a list."""
        if self.stop is None:
            return None
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatCompletionRequest(_Sampling):
    """`POST /v1/chat/completions`."""

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage]
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    approvals: dict[str, bool] | None = Field(None, description="gptbuilder: {tool call id: approve?} for GPT actions")

    @field_validator("messages")
    @classmethod
    def _not_empty(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if not messages:
            raise ValueError("messages is empty; send at least one user message")
        return messages

    def answer_tokens(self) -> int | None:
        """max_completion_tokens, else max_tokens."""
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    """`POST /v1/completions` (legacy): a prompt instead of messages."""

    model: str | None = Field(None, max_length=200)
    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list) and len(prompt) != 1:
            raise ValueError("send exactly one prompt; batches of prompts are not supported")
        text = prompt if isinstance(prompt, str) else prompt[0]
        if not text.strip():
            raise ValueError("the prompt is empty")
        return prompt

    def text(self) -> str:
        """The one prompt."""
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def answer_tokens(self) -> int | None:
        """max_tokens (legacy name only)."""
        return self.max_tokens
