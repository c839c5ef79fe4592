"""The GPT spec: pydantic models for one YAML file and its JSON Schema; loading it is `loader`'s job."""

from __future__ import annotations

import re
import shlex
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

Category = Literal["customer-service", "content", "coding", "translation", "qa"]
CATEGORIES: tuple[str, ...] = typing.get_args(Category)

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_INSTRUCTIONS_CHARS = 100_000
FUNCTION_PATH = r"^([A-Za-z_][\w.]*):([A-Za-z_]\w*)$"  # package.module:function

# The one table of built-in tool names; tools/builtin.py implements each of them.
BuiltinName = Literal["calculator", "current_time", "python", "fetch_url"]
BUILTIN_TOOLS: tuple[str, ...] = typing.get_args(BuiltinName)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], BeforeValidator(_as_list, json_schema_input_type=str | list[str])]


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


HTTPURL = Annotated[str, AfterValidator(_http_url)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    """Which model answers, and how it samples."""

    provider: str = Field(default="local", description="local | transformers | openai, or a plugin's name")
    name: str | None = Field(
        default=None,
        description="Model id: a .gguf path (local), HF id or folder (transformers), "
        "model name on the endpoint (openai). Omitted: the embedded SmolLM2-135M-Instruct.",
    )
    base_url: HTTPURL | None = Field(default=None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(default=None, pattern=ENV_NAME, description="Environment variable holding the key")
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=131_072, description="Most tokens in one answer")
    stop: StrList = Field(default_factory=list, max_length=8)
    seed: int | None = None
    context_window: int | None = Field(default=None, ge=256, le=2_000_000, description="Tokens the model can see")
    timeout: float = Field(default=60.0, gt=0, le=3600, description="Seconds to wait for the model")
    max_retries: int = Field(default=2, ge=0, le=10)
    options: dict[str, Any] = Field(default_factory=dict, description="Provider-specific settings")


class RerankConfig(_Strict):
    """`knowledge.rerank`: the first search's best candidates rescored by a cross-encoder or the GPT's own model."""

    model: str | None = Field(
        default=None,
        min_length=1,
        description="A cross-encoder: a folder (relative to the spec) or a model already in the local Hugging Face "
        "cache; never downloaded",
    )
    judge: Literal["model"] | None = Field(
        default=None, description="model: the GPT's own chat model says yes or no for each candidate (one call each)"
    )
    candidates: int = Field(default=20, ge=2, le=100, description="How many of the first search's best are rescored")

    @model_validator(mode="after")
    def _one_scorer(self) -> RerankConfig:
        if (self.model is None) == (self.judge is None):
            raise ValueError("give rerank exactly one of 'model' (a cross-encoder folder) and 'judge: model'")
        return self


class EntailmentConfig(_Strict):
    """`knowledge.entailment`: verified answers' sentences also checked by an NLI cross-encoder against the sources."""

    model: str = Field(
        min_length=1,
        description="An NLI cross-encoder: a folder (relative to the spec) or a model already in the local Hugging Face "
        "cache; never downloaded",
    )
    threshold: float = Field(
        default=0.5, ge=0, le=1, description="Least probability that the sources entail a sentence for it to be shown"
    )


class KnowledgeConfig(_Strict):
    """Files the GPT answers from, and how they are searched."""

    files: StrList = Field(default_factory=list, description="Globs relative to the spec file")
    chunk_size: int = Field(default=800, ge=100, le=8000)
    chunk_overlap: int = Field(default=100, ge=0, le=4000)
    splitter: Literal["auto", "markdown", "recursive"] = "auto"
    top_k: int = Field(default=4, ge=1, le=50)
    search: Literal["dense", "bm25", "hybrid"] = "hybrid"
    min_score: float | None = Field(default=None, ge=0, le=1)
    embedding_model: str | None = None
    full_context_under_tokens: int = Field(default=0, ge=0)
    on_no_match: Literal["refuse", "answer"] = "refuse"
    private: bool = Field(default=False, description="Answers never repeat a passage verbatim (30+ characters in a row)")
    answer_mode: Literal["generate", "extractive", "verified"] = Field(
        default="verified",
        description="generate: the model answers freely; verified: each sentence is checked against the sources "
        "before it is shown; extractive: the answer is the sources' best-matching sentences, no generation",
    )
    unsupported: Literal["drop", "quote", "mark"] = Field(
        default="quote",
        description="verified mode: what happens to a sentence with a claim the sources do not support",
    )
    rerank: RerankConfig | None = Field(default=None, description="Rescore the search's best candidates before top_k")
    entailment: EntailmentConfig | None = Field(
        default=None, description="verified mode: also hold each sentence to an NLI model's judgement of the sources"
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> KnowledgeConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        if self.entailment is not None and self.answer_mode != "verified":
            raise ValueError(f"entailment checks verified answers; with answer_mode: {self.answer_mode} nothing would "
                             "be checked: set answer_mode: verified or remove entailment")
        return self


class ActionAuth(_Strict):
    """How an action authenticates; secrets are named by environment variable, never written here."""

    type: Literal["none", "api_key", "bearer", "basic", "oauth2_client_credentials"] = "none"
    header: str | None = None
    query: str | None = None
    token_env: str | None = Field(default=None, pattern=ENV_NAME)
    username_env: str | None = Field(default=None, pattern=ENV_NAME)
    password_env: str | None = Field(default=None, pattern=ENV_NAME)
    client_id_env: str | None = Field(default=None, pattern=ENV_NAME)
    client_secret_env: str | None = Field(default=None, pattern=ENV_NAME)
    token_url: str | None = None
    scopes: list[str] = Field(default_factory=list)


class ActionConfig(_Strict):
    """An OpenAPI file whose operations become tools."""

    openapi: str = Field(description="OpenAPI 3.x file, relative to the spec file")
    operations: list[str] | None = None
    auth: ActionAuth = Field(default_factory=ActionAuth)
    confirm: list[str] | None = Field(default=None, description="operationIds needing approval; default every non-GET")
    timeout: float = Field(default=15.0, gt=0, le=300)
    max_response_bytes: int = Field(default=1_000_000, ge=1, le=50_000_000)


class ActionTool(_Strict):
    """`- action: {...}` in `tools:`."""

    action: ActionConfig


def _split_command(value: Any) -> Any:
    return shlex.split(value) if isinstance(value, str) else value


MCP_TOOL_NAME = r"^[A-Za-z0-9_.\-/]{1,128}$"


class MCPServerConfig(_Strict):
    """An MCP server whose tools become the GPT's: a command spoken to over stdio, or a streamable-HTTP URL."""

    command: Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_split_command)] | None = Field(
        default=None, min_length=1, description="Program and arguments, run over stdio in the spec's folder (operator's specs only)"
    )
    env: dict[Annotated[str, Field(pattern=ENV_NAME)], str] = Field(
        default_factory=dict, description="Extra environment variables for the command (plain values; secrets go in pass_env)"
    )
    pass_env: list[Annotated[str, Field(pattern=ENV_NAME)]] = Field(
        default_factory=list, description="Variables passed on from gptbuilder's environment (the command gets no others)"
    )
    url: HTTPURL | None = Field(default=None, description="Streamable-HTTP endpoint, e.g. https://mcp.example.com/mcp")
    headers: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")], str] = Field(
        default_factory=dict, description="Extra HTTP headers (plain values; credentials go in auth)"
    )
    auth: ActionAuth = Field(default_factory=ActionAuth)
    tools: list[Annotated[str, Field(pattern=MCP_TOOL_NAME)]] | None = Field(
        default=None, description="Which of the server's tools the GPT gets; default all"
    )
    prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_\-]{0,32}$", description="Put before each tool's name, e.g. github_")
    confirm: list[Annotated[str, Field(pattern=MCP_TOOL_NAME)]] | None = Field(
        default=None, description="Tools needing approval; default every tool the server does not mark read-only"
    )
    timeout: float = Field(default=30.0, gt=0, le=600, description="Seconds to start the server, and for each call")
    max_response_bytes: int = Field(default=1_000_000, ge=1_000, le=50_000_000, description="Largest message taken from the server")

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give the MCP server exactly one of 'command' (run over stdio) and 'url' (streamable HTTP)")
        misplaced = [name for name in (("env", "pass_env") if self.url else ("headers", "auth")) if name in self.model_fields_set]
        if misplaced:
            verb = "apply" if len(misplaced) > 1 else "applies"
            raise ValueError(f"{' and '.join(misplaced)} {verb} only to {'command' if self.url else 'url'} servers")
        return self

    @property
    def shown(self) -> str:
        """How messages name this server: its URL, or its command line."""
        return self.url or shlex.join(self.command or [])


class MCPTool(_Strict):
    """`- mcp: {command: [...]}` or `- mcp: {url: ...}` in `tools:`: each of the server's tools becomes one."""

    mcp: MCPServerConfig


class FunctionTool(_Strict):
    """`- function: my_pkg.tools:lookup_order` in `tools:` (a bare "pkg.mod:func" string works too)."""

    function: str = Field(pattern=FUNCTION_PATH)


class BuiltinTool(_Strict):
    """`- builtin: python` with options, or just `- python` in `tools:`."""

    builtin: BuiltinName
    options: dict[str, Any] = Field(default_factory=dict)


def _tool_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "function" if ":" in value else "builtin"
    if isinstance(value, dict):
        for kind in ("action", "mcp", "function", "builtin"):
            if kind in value:
                return kind
        return None
    if isinstance(value, BaseModel):
        return {ActionTool: "action", MCPTool: "mcp", FunctionTool: "function", BuiltinTool: "builtin"}.get(type(value))
    return None


def _tool_from_string(value: Any) -> Any:
    if isinstance(value, str):
        return {"function": value} if ":" in value else {"builtin": value}
    return value


ToolEntry = Annotated[
    Annotated[ActionTool, Tag("action")]
    | Annotated[MCPTool, Tag("mcp")]
    | Annotated[FunctionTool, Tag("function")]
    | Annotated[BuiltinTool, Tag("builtin")],
    Discriminator(
        _tool_kind,
        custom_error_type="tool_kind",
        custom_error_message=f"a tool is a built-in name ({', '.join(BUILTIN_TOOLS)}), "
        "'package.module:function', or a mapping with 'action', 'mcp', 'function' or 'builtin'",
    ),
    BeforeValidator(
        _tool_from_string,
        json_schema_input_type=BuiltinName
        | Annotated[str, Field(pattern=FUNCTION_PATH)]
        | ActionTool
        | MCPTool
        | FunctionTool
        | BuiltinTool,
    ),
]


class CuratedAnswer(_Strict):
    """A vetted answer given without the model when a question matches."""

    question: str = Field(min_length=1, max_length=2000)
    answer: str = Field(min_length=1, max_length=20_000)
    threshold: float | None = Field(default=None, ge=0, le=1, description="Overrides the spec's curated_threshold")


class WidgetConfig(_Strict):
    """The embeddable website widget; an empty `allowed_origins` turns it off."""

    allowed_origins: list[str] = Field(default_factory=list)
    greeting: str | None = Field(default=None, max_length=1000)
    title: str | None = Field(default=None, max_length=100)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")
    position: Literal["bottom-right", "bottom-left"] = "bottom-right"
    theme: Literal["auto", "light", "dark"] = "auto"
    avatar: str | None = None
    placeholder: str | None = Field(default=None, max_length=200)
    open_on_load: bool = False

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not re.match(r"^https?://[A-Za-z0-9.\-\[\]:]+$", origin):
                raise ValueError(f"{origin!r} is not an origin like https://example.com (no path)")
        return origins


class LimitsConfig(_Strict):
    """Per-GPT usage limits."""

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_day: int | None = Field(default=None, ge=1)


class ToolCallExpectation(_Strict):
    """The agent must call `tool`, with at least these `args`."""

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class Expectation(_Strict):
    """What a test case checks in the answer."""

    contains: StrList = Field(default_factory=list)
    not_contains: StrList = Field(default_factory=list)
    regex: str | None = None
    cites: StrList = Field(default_factory=list)
    refuses: bool | None = None
    calls: ToolCallExpectation | None = None
    curated: bool | None = None
    moderated: bool | None = Field(default=None, description="true: moderation blocks the turn (input or answer)")
    grounded: bool | None = Field(default=None, description="true: every checkable claim in the answer is in its sources")
    facts: StrList = Field(default_factory=list, description="Facts the answer states (£42 = 42 pounds, 7:00 = 7am)")
    max_latency_ms: int | None = Field(default=None, ge=1)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class TestCase(_Strict):
    """One case of `gptbuilder test`."""

    __test__ = False  # not a pytest class

    name: str | None = None
    ask: str = Field(min_length=1)
    expect: Expectation | None = None
    retrieves: StrList = Field(default_factory=list, description="Files that must be in the top-k")

    @model_validator(mode="after")
    def _checks_something(self) -> TestCase:
        if self.expect is None and not self.retrieves:
            raise ValueError("a test needs 'expect' or 'retrieves'")
        return self


PIIMode = Literal["off", "mask", "block"]
DEFAULT_REFUSAL = "Sorry, I can't help with that request."


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is blank; write a word or phrase")
    return value


def _pattern_compiles(value: str) -> str:
    from .moderation.patterns import compile_pattern

    compile_pattern(value)  # ValueError: invalid, or matches empty text
    return value


class RemoteModerationConfig(_Strict):
    """`moderation.remote:`: an OpenAI-compatible `/v1/moderations` endpoint that judges the text too."""

    url: HTTPURL = Field(description="The endpoint itself, e.g. https://api.openai.com/v1/moderations")
    api_key_env: str | None = Field(default=None, pattern=ENV_NAME, description="Environment variable holding its key")
    model: str | None = Field(default=None, min_length=1, max_length=200, description="Moderation model to ask for")
    timeout: float = Field(default=5.0, gt=0, le=60, description="Seconds one check may take, connection included")
    on_error: Literal["block", "allow"] = Field(
        default="block", description="A timeout, HTTP error or malformed answer blocks the turn (block) or lets it on"
    )
    every: int = Field(
        default=500, ge=50, le=100_000,
        description="Characters of a streamed answer checked per call (and the rest at its end): calls stay bounded",
    )
    allow_private_network: bool = Field(default=False, description="The endpoint may be on loopback or a private network")


class ModerationConfig(_Strict):
    """`moderation:`: checks on what users send and what the GPT answers (also a server-wide default file)."""

    input: bool = Field(default=True, description="Check the user's latest message before anything answers it")
    output: bool = Field(default=True, description="Check the answer as it streams, before the user sees it")
    blocklist: list[Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_not_blank)]] = Field(
        default_factory=list, max_length=5000, description="Words and phrases refused in any case, as whole words"
    )
    patterns: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z][\w-]{0,39}$")],
        Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_pattern_compiles)],
    ] = Field(default_factory=dict, max_length=100, description="Named regular expressions refused (case-insensitive)")
    pii: PIIMode = Field(
        default="off",
        description="Emails, phone numbers, card numbers (Luhn) and IBANs (mod 97): off, mask (replaced by [email] …) "
        "or block",
    )
    refusal: str = Field(default=DEFAULT_REFUSAL, min_length=1, max_length=2000, description="What a blocked turn answers")
    remote: RemoteModerationConfig | None = Field(
        default=None, description="An OpenAI-compatible /v1/moderations endpoint that also judges messages and answers"
    )


class GPTSpec(_Strict):
    """One GPT, as written in `gpts/<id>.yaml`."""

    name: str = Field(min_length=1, max_length=80)
    description: str = Field(default="", max_length=500)
    category: Category = "qa"
    tags: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list, max_length=20)
    avatar: str | None = Field(default=None, max_length=200, description="An emoji, or an image path relative to the spec")
    author: str | None = Field(default=None, max_length=100)
    version: str | None = Field(default=None, max_length=40)
    instructions: str | None = Field(default=None, max_length=MAX_INSTRUCTIONS_CHARS)
    instructions_file: str | None = Field(default=None, description="Text file with the instructions, relative to the spec")
    conversation_starters: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=12
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    knowledge: KnowledgeConfig | None = None
    tools: list[ToolEntry] = Field(default_factory=list)
    max_tool_calls: int = Field(default=5, ge=1, le=50)
    allow_private_network: bool = False
    protect_instructions: bool = Field(
        default=False, description="Stop answers that repeat the instructions verbatim or nearly (30+ characters in a row)"
    )
    curated_answers: list[CuratedAnswer] = Field(default_factory=list)
    curated_threshold: float = Field(
        default=0.8, ge=0, le=1, description="Similarity (0-1) a message needs to get a curated answer, unless the pair sets its own"
    )
    moderation: ModerationConfig | None = Field(
        default=None, description="Input and output checks; omitted: the server's default (GPTBUILDER_MODERATION), if any"
    )
    widget: WidgetConfig | None = None
    limits: LimitsConfig | None = None
    tests: list[TestCase] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_instructions_source(self) -> GPTSpec:
        problem = instructions_source_problem(self.instructions, self.instructions_file)
        if problem:
            raise ValueError(problem)
        return self

    @field_validator("instructions")
    @classmethod
    def _instructions_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("instructions are blank; write what the GPT should do")
        return value

    @field_validator("curated_answers")
    @classmethod
    def _unique_questions(cls, answers: list[CuratedAnswer]) -> list[CuratedAnswer]:
        seen: set[str] = set()
        for answer in answers:
            key = " ".join(answer.question.lower().split())
            if key in seen:
                raise ValueError(f"duplicate question {answer.question!r}")
            seen.add(key)
        return answers


def instructions_source_problem(instructions: object, instructions_file: object) -> str | None:
    """Why a spec does not give exactly one of `instructions` and `instructions_file`, or None.

    The loader asks this of the raw YAML too: pydantic runs the model check only once every field is valid.
    """
    if instructions is None and instructions_file is None:
        return "give the GPT 'instructions' (text) or 'instructions_file' (a path)"
    if instructions is not None and instructions_file is not None:
        return "give 'instructions' or 'instructions_file', not both"
    return None


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema of a spec file, for editors (`gptbuilder schema`)."""
    schema = GPTSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "gptbuilder GPT spec"
    return schema
