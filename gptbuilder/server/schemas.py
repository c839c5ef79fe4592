"""Request bodies of the OpenAI-compatible API (pydantic at the edge), and their translation for the agent."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..errors import did_you_mean
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
    """One message: string or content-part content; tool calls and results for client-side tools.

    The deprecated function-calling turns (an assistant's `function_call`, a `function` message with its
    result) are taken too; ChatCompletionRequest.agent_messages turns them into tool calls and results.
    """

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    function_call: dict[str, Any] | None = None

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
    """`stream_options`: whether a last chunk carries the usage (`include_obfuscation` is taken and has no effect)."""

    include_usage: bool = False
    include_obfuscation: bool | None = None


class JsonSchemaFormat(BaseModel):
    """`response_format.json_schema`: the JSON Schema an answer follows, named as OpenAI names it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = Field(None, max_length=4000)
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _compilable(cls, schema: dict[str, Any]) -> dict[str, Any]:
        from ..errors import InputError
        from ..models.structured import check_schema

        try:
            check_schema(schema)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return schema


class ResponseFormat(BaseModel):
    """`response_format`: text, any JSON object (`json_object`), or JSON following a schema (`json_schema`)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs 'json_schema': {name, schema, strict}")
        if self.type != "json_schema" and self.json_schema is not None:
            raise ValueError(f"'json_schema' goes with type json_schema, not {self.type}")
        return self

    def for_agent(self) -> dict[str, Any] | None:
        """The format as the agent takes it (OpenAI's shape), None for plain text."""
        return None if self.type == "text" else self.model_dump(by_alias=True, exclude_none=True)

    @classmethod
    def checked(cls, value: Any, param: str, *, flat: bool = False) -> ResponseFormat | None:
        """``value`` validated, every problem a 400 naming ``param``; ``flat``: the Responses API's shape, its
        json_schema fields beside `type`, was given (and its problems are named so)."""
        if value is None or isinstance(value, ResponseFormat):
            return value
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            where = where.removeprefix("json_schema.") if flat else where
            why = problem["msg"].removeprefix("Value error, ")
            raise _problem("invalid_value", param, "{param}{where}: {why}", where=f".{where}" if where else "", why=why) from None


def _problem(code: str, param: str, message: str, **context: Any) -> PydanticCustomError:
    """A validation error with OpenAI's code, naming its parameter (server/errors.py reads both)."""
    return PydanticCustomError(code, message, {"param": param, **context})


def _unsupported(name: str, why: str) -> PydanticCustomError:
    """OpenAI's refusal of a parameter this server does not implement (a 400 naming it, never silently dropped)."""
    return _problem("unsupported_parameter", name, "Unsupported parameter: '{param}' {why}", why=why)


def _unsupported_value(name: str, why: str) -> PydanticCustomError:
    return _problem("unsupported_value", name, "Unsupported value: '{param}' {why}", why=why)


def _at_most_one(count: int | None, name: str, why: str) -> int | None:
    if count is not None and count != 1:
        raise _unsupported_value(name, why)
    return count


TokenId = Annotated[int, Field(ge=0)]
Bias = Annotated[float, Field(ge=-100, le=100)]
Penalty = Field(None, ge=-2, le=2)


class _Sampling(RequestBody):
    """What chat and legacy completions share. Every OpenAI parameter is declared: a name neither knows is a 400."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Penalty
    frequency_penalty: float | None = Penalty
    logit_bias: dict[TokenId, Bias] | None = Field(None, max_length=300)
    # vLLM's and llama.cpp's extensions, which Open WebUI sends when a user sets them in a chat's advanced params.
    top_k: int | None = Field(None, ge=-1, description="sample from the k likeliest tokens (0 or -1: all)")
    min_p: float | None = Field(None, ge=0, le=1, description="drop tokens less likely than min_p times the likeliest")
    repeat_penalty: float | None = Field(None, gt=0, le=2, description="divide the logits of tokens already in the text (1: off)")
    user: str | None = Field(None, max_length=256)
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    citations: Literal["off", "field", "inline"] | None = Field(
        None,
        description="gptbuilder: the sources in a `citations` field (field), also as footnotes in the text (inline, for "
        "clients that drop extra fields), or not at all (off); default: the server's (serve --citations)",
    )

    @model_validator(mode="before")
    @classmethod
    def _known_parameters(cls, data: Any) -> Any:
        # OpenAI refuses arguments it does not know; dropping them would hide a typo (max_token) or a feature
        # the client relies on. The README's "OpenAI parameters" table lists what each one does here.
        if isinstance(data, dict):
            for name in data:
                if name not in cls.model_fields:
                    hint = did_you_mean(str(name), cls.model_fields)
                    raise _problem("unknown_parameter", str(name), "Unrecognized request argument supplied: {param}{hint}", hint=hint)
        return data

    @field_validator("response_format", mode="before")
    @classmethod
    def _response_format(cls, value: Any) -> Any:
        return ResponseFormat.checked(value, "response_format")

    def agent_response_format(self) -> dict[str, Any] | None:
        """`response_format` for the agent: None for plain text."""
        return self.response_format.for_agent() if self.response_format else None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        return _at_most_one(n, "n", "must be 1: only n=1 is supported (one choice per request); send several requests instead")

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

    def logprob_options(self) -> tuple[bool, int | None]:
        """Whether to report token log probabilities, and how many alternatives per token."""
        return False, None


class FunctionName(BaseModel):
    """`{"name": ...}`: a deprecated `function_call` naming the function to call."""

    name: str = Field(min_length=1, max_length=64)


class ChatCompletionRequest(_Sampling):
    """`POST /v1/chat/completions`."""

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage]
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    functions: list[FunctionDef] | None = Field(None, max_length=128, description="Deprecated: tools")
    function_call: Literal["none", "auto"] | FunctionName | None = Field(None, description="Deprecated: tool_choice")
    # Harmless: taken and without effect here (see the README's "OpenAI parameters").
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = Field(None, max_length=16)
    store: bool | None = None
    service_tier: str | None = None
    modalities: list[str] | None = None
    prompt_cache_key: str | None = Field(None, max_length=1024)
    safety_identifier: str | None = Field(None, max_length=256)
    # Refused with a 400 when sent: features this server does not have.
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None
    reasoning_effort: Any = None
    verbosity: Any = None
    approvals: dict[str, bool] | None = Field(None, description="gptbuilder: {tool call id: approve?} for GPT actions")

    @field_validator("messages")
    @classmethod
    def _not_empty(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if not messages:
            raise ValueError("messages is empty; send at least one user message")
        return messages

    @field_validator("audio", "prediction", "web_search_options", "reasoning_effort", "verbosity")
    @classmethod
    def _not_here(cls, value: Any, info: Any) -> Any:
        if value is not None:
            why = {
                "audio": "is not supported: GPTs answer in text",
                "prediction": "is not supported: there is no predicted-output decoding here",
                "web_search_options": "is not supported: give the GPT a web tool in its spec instead",
            }.get(info.field_name, "is not supported with this model")
            raise _unsupported(info.field_name, why)
        return value

    @field_validator("service_tier")
    @classmethod
    def _one_tier(cls, tier: str | None) -> str | None:
        if tier not in (None, "auto", "default"):
            raise _unsupported_value("service_tier", f"{tier!r}: this server has one tier; send 'auto' or 'default', or leave it out")
        return tier

    @field_validator("modalities")
    @classmethod
    def _text_only(cls, modalities: list[str] | None) -> list[str] | None:
        if modalities is not None and set(modalities) - {"text"}:
            raise _unsupported_value("modalities", "must be ['text']: GPTs answer in text")
        return modalities

    @model_validator(mode="after")
    def _consistent_tools(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise _problem("invalid_value", "top_logprobs", "top_logprobs needs logprobs: true")
        if self.functions is not None and self.tools is not None:
            raise _problem("invalid_value", "functions", "send 'tools' or the deprecated 'functions', not both")
        if self.function_call is not None and self.tool_choice is not None:
            raise _problem("invalid_value", "function_call", "send 'tool_choice' or the deprecated 'function_call', not both")
        if isinstance(self.tool_choice, dict):
            _check_named(self.tool_choice, [t.function.name for t in self.tools or []], "tool_choice", "tools")
        if isinstance(self.function_call, FunctionName):
            _check_named(self.client_tool_choice(), [f.name for f in self.functions or []], "function_call", "functions")
        return self

    def answer_tokens(self) -> int | None:
        """max_completion_tokens, else max_tokens."""
        return self.max_completion_tokens or self.max_tokens

    def logprob_options(self) -> tuple[bool, int | None]:
        """`logprobs` and `top_logprobs`."""
        return bool(self.logprobs), self.top_logprobs if self.logprobs else None

    @property
    def legacy_functions(self) -> bool:
        """Whether the client uses the deprecated `functions` (it is answered with `function_call`, not `tool_calls`)."""
        return self.functions is not None

    def client_tools(self) -> list[dict[str, Any]] | None:
        """The caller's tools as OpenAI tool dicts, `functions` included."""
        if self.functions is not None:
            return [ToolDef(function=f).model_dump() for f in self.functions]
        return [t.model_dump() for t in self.tools] if self.tools else None

    def client_tool_choice(self) -> Any:
        """`tool_choice`, or the deprecated `function_call` as one."""
        if isinstance(self.function_call, FunctionName):
            return {"type": "function", "function": {"name": self.function_call.name}}
        return self.function_call if self.function_call is not None else self.tool_choice

    def agent_messages(self) -> list[dict[str, Any]]:
        """The messages for the agent, the deprecated function-calling turns as tool calls and their results."""
        messages = []
        call_id = None
        for index, message in enumerate(self.messages):
            if message.role == "function":
                if call_id is None:
                    raise APIError(400, f"messages.{index}: a function message must follow an assistant's function_call", param="messages")
                messages.append({"role": "tool", "content": message.text(), "tool_call_id": call_id})
                continue
            agent_message = message.to_agent()
            if message.role == "assistant" and message.function_call and not message.tool_calls:
                call_id = f"call_function_{index}"
                agent_message["tool_calls"] = [{"id": call_id, "type": "function", "function": message.function_call}]
            messages.append(agent_message)
        return messages


def _check_named(choice: dict[str, Any], known: list[str], param: str, listed: str) -> None:
    """A choice of one function must name one the request sends (OpenAI refuses the rest too)."""
    if choice.get("type") != "function":
        kind = str(choice.get("type"))
        raise _problem("unsupported_value", param, "a {param} of type '{kind}' is not supported; name a function", kind=kind)
    name = (choice.get("function") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise _problem("invalid_value", param, "{param} must name a function: type 'function' with function.name")
    if name not in known:
        hint = did_you_mean(name, known) if known else f" (the request sends no {listed})"
        message = "{param} names function '{name}', which is not in '{listed}'{hint}"
        raise _problem("invalid_value", param, message, name=name, listed=listed, hint=hint)


class CompletionRequest(_Sampling):
    """`POST /v1/completions` (legacy): a prompt instead of messages."""

    model: str | None = Field(None, max_length=200)
    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = Field(None, ge=0, le=5)
    best_of: int | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list) and len(prompt) != 1:
            raise ValueError("send exactly one prompt; batches of prompts are not supported")
        text = prompt if isinstance(prompt, str) else prompt[0]
        if not text.strip():
            raise ValueError("the prompt is empty")
        return prompt

    @field_validator("best_of")
    @classmethod
    def _one_candidate(cls, best_of: int | None) -> int | None:
        return _at_most_one(best_of, "best_of", "must be 1: one candidate is generated per request")

    @model_validator(mode="after")
    def _no_prompt_logprobs(self) -> CompletionRequest:
        if self.echo and self.logprobs is not None:
            raise _unsupported_value("logprobs", "cannot be combined with echo: the prompt's own log probabilities are not computed")
        return self

    def text(self) -> str:
        """The one prompt."""
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def answer_tokens(self) -> int | None:
        """max_tokens (legacy name only)."""
        return self.max_tokens

    def logprob_options(self) -> tuple[bool, int | None]:
        """Legacy `logprobs` is the number of alternatives per token (0: the chosen token's only)."""
        return self.logprobs is not None, self.logprobs or None
