"""The GPT spec: pydantic models for one YAML file, and `load_spec` to read one safely."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import SpecError, SpecProblem
from .paths import PathEscapeError, safe_join
from .yamlsafe import YamlDocument, read_yaml

Category = Literal["customer-service", "content", "coding", "translation", "qa"]
CATEGORIES: tuple[str, ...] = Category.__args__

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_INSTRUCTIONS_CHARS = 100_000
IMPLEMENTED_SECTIONS: frozenset[str] = frozenset({"knowledge", "tools", "curated_answers", "tests", "widget", "limits"})  # reserved sections that gptbuilder acts on so far


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], BeforeValidator(_as_list, json_schema_input_type=str | list[str])]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    """Which model answers, and how it samples."""

    provider: str = Field("local", description="local | transformers | openai, or a plugin's name")
    name: str | None = Field(
        None,
        description="Model id: a .gguf path (local), HF id or folder (transformers), "
        "model name on the endpoint (openai). Omitted: the embedded SmolLM2-135M-Instruct.",
    )
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(None, pattern=ENV_NAME, description="Environment variable holding the key")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=131_072, description="Most tokens in one answer")
    stop: StrList = Field(default_factory=list, max_length=8)
    seed: int | None = None
    context_window: int | None = Field(None, ge=256, le=2_000_000, description="Tokens the model can see")
    timeout: float = Field(60.0, gt=0, le=3600, description="Seconds to wait for the model")
    max_retries: int = Field(2, ge=0, le=10)
    options: dict[str, Any] = Field(default_factory=dict, description="Provider-specific settings")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class KnowledgeConfig(_Strict):
    """Files the GPT answers from, and how they are searched."""

    files: StrList = Field(default_factory=list, description="Globs relative to the spec file")
    chunk_size: int = Field(800, ge=100, le=8000)
    chunk_overlap: int = Field(100, ge=0, le=4000)
    splitter: Literal["auto", "markdown", "recursive"] = "auto"
    top_k: int = Field(4, ge=1, le=50)
    search: Literal["dense", "bm25", "hybrid"] = "hybrid"
    min_score: float | None = Field(None, ge=0, le=1)
    embedding_model: str | None = None
    full_context_under_tokens: int = Field(0, ge=0)
    on_no_match: Literal["refuse", "answer"] = "refuse"

    @model_validator(mode="after")
    def _overlap_below_size(self) -> KnowledgeConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self


class ActionAuth(_Strict):
    """How an action authenticates; secrets are named by environment variable, never written here."""

    type: Literal["none", "api_key", "bearer", "basic", "oauth2_client_credentials"] = "none"
    header: str | None = None
    query: str | None = None
    token_env: str | None = Field(None, pattern=ENV_NAME)
    username_env: str | None = Field(None, pattern=ENV_NAME)
    password_env: str | None = Field(None, pattern=ENV_NAME)
    client_id_env: str | None = Field(None, pattern=ENV_NAME)
    client_secret_env: str | None = Field(None, pattern=ENV_NAME)
    token_url: str | None = None
    scopes: list[str] = Field(default_factory=list)


class ActionConfig(_Strict):
    """An OpenAPI file whose operations become tools."""

    openapi: str = Field(description="OpenAPI 3.x file, relative to the spec file")
    operations: list[str] | None = None
    auth: ActionAuth = Field(default_factory=ActionAuth)
    confirm: list[str] | None = Field(None, description="operationIds needing approval; default every non-GET")
    timeout: float = Field(15.0, gt=0, le=300)
    max_response_bytes: int = Field(1_000_000, ge=1, le=50_000_000)


class ActionTool(_Strict):
    """`- action: {...}` in `tools:`."""

    action: ActionConfig


class FunctionTool(_Strict):
    """`- function: my_pkg.tools:lookup_order` in `tools:` (a bare "pkg.mod:func" string works too)."""

    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


BUILTIN_TOOLS = ("calculator", "current_time", "python", "fetch_url")


class BuiltinTool(_Strict):
    """`- builtin: python` with options, or just `- python` in `tools:`."""

    builtin: Literal["calculator", "current_time", "python", "fetch_url"]
    options: dict[str, Any] = Field(default_factory=dict)


def _tool_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "function" if ":" in value else "builtin"
    if isinstance(value, dict):
        for kind in ("action", "function", "builtin"):
            if kind in value:
                return kind
        return None
    if isinstance(value, BaseModel):
        return {ActionTool: "action", FunctionTool: "function", BuiltinTool: "builtin"}.get(type(value))
    return None


def _tool_from_string(value: Any) -> Any:
    if isinstance(value, str):
        return {"function": value} if ":" in value else {"builtin": value}
    return value


ToolEntry = Annotated[
    Annotated[ActionTool, Tag("action")]
    | Annotated[FunctionTool, Tag("function")]
    | Annotated[BuiltinTool, Tag("builtin")],
    Discriminator(
        _tool_kind,
        custom_error_type="tool_kind",
        custom_error_message="a tool is a built-in name (calculator, current_time, python, fetch_url), "
        "'package.module:function', or a mapping with 'action', 'function' or 'builtin'",
    ),
    BeforeValidator(
        _tool_from_string,
        json_schema_input_type=Literal["calculator", "current_time", "python", "fetch_url"]
        | Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]
        | ActionTool
        | FunctionTool
        | BuiltinTool,
    ),
]


class CuratedAnswer(_Strict):
    """A vetted answer given without the model when a question matches."""

    question: str = Field(min_length=1, max_length=2000)
    answer: str = Field(min_length=1, max_length=20_000)
    threshold: float | None = Field(None, ge=0, le=1, description="Overrides the spec's curated_threshold")


class WidgetConfig(_Strict):
    """The embeddable website widget; an empty `allowed_origins` turns it off."""

    allowed_origins: list[str] = Field(default_factory=list)
    greeting: str | None = Field(None, max_length=1000)
    title: str | None = Field(None, max_length=100)
    color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")
    position: Literal["bottom-right", "bottom-left"] = "bottom-right"
    theme: Literal["auto", "light", "dark"] = "auto"
    avatar: str | None = None
    placeholder: str | None = Field(None, max_length=200)
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

    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_day: int | None = Field(None, ge=1)


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
    max_latency_ms: int | None = Field(None, ge=1)

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


class GPTSpec(_Strict):
    """One GPT, as written in `gpts/<id>.yaml`."""

    name: str = Field(min_length=1, max_length=80)
    description: str = Field("", max_length=500)
    category: Category = "qa"
    tags: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list, max_length=20)
    avatar: str | None = Field(None, max_length=200, description="An emoji, or an image path relative to the spec")
    author: str | None = Field(None, max_length=100)
    version: str | None = Field(None, max_length=40)
    instructions: str | None = Field(None, max_length=MAX_INSTRUCTIONS_CHARS)
    instructions_file: str | None = Field(None, description="Text file with the instructions, relative to the spec")
    conversation_starters: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=12
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    knowledge: KnowledgeConfig | None = None
    tools: list[ToolEntry] = Field(default_factory=list)
    max_tool_calls: int = Field(5, ge=1, le=50)
    allow_private_network: bool = False
    curated_answers: list[CuratedAnswer] = Field(default_factory=list)
    curated_threshold: float = Field(
        0.8, ge=0, le=1, description="Similarity (0-1) a message needs to get a curated answer, unless the pair sets its own"
    )
    widget: WidgetConfig | None = None
    limits: LimitsConfig | None = None
    tests: list[TestCase] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_instructions_source(self) -> GPTSpec:
        if self.instructions is None and self.instructions_file is None:
            raise ValueError("give the GPT 'instructions' (text) or 'instructions_file' (a path)")
        if self.instructions is not None and self.instructions_file is not None:
            raise ValueError("give 'instructions' or 'instructions_file', not both")
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


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with what the file implies: its id, folder and resolved instructions."""

    id: str
    path: Path
    spec: GPTSpec
    instructions: str
    sources: tuple[Path, ...]

    @property
    def folder(self) -> Path:
        """The folder every relative path of this spec is resolved against."""
        return self.path.parent

    def unsupported_sections(self) -> list[str]:
        """Sections this spec fills that this version validates but does not act on yet."""
        spec = self.spec
        filled = {
            "knowledge": spec.knowledge is not None,
            "tools": bool(spec.tools),
            "curated_answers": bool(spec.curated_answers),
            "widget": spec.widget is not None,
            "limits": spec.limits is not None,
            "tests": bool(spec.tests),
        }
        return [name for name, used in filled.items() if used and name not in IMPLEMENTED_SECTIONS]

    def resolve(self, relative: str) -> Path:
        """Resolve a path written in the spec, refusing anything outside the spec's folder."""
        return safe_join(self.folder, relative)


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema of a spec file, for editors (`gptbuilder schema`)."""
    schema = GPTSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "gptbuilder GPT spec"
    return schema


def load_spec(path: str | Path, *, display: str | None = None, gpt_id: str | None = None) -> LoadedSpec:
    """Read, validate and resolve one spec file; raise SpecError listing every problem in it.

    ``gpt_id`` overrides the id taken from the file name (the builder validates drafts in temporary files).
    """
    from .spec_errors import describe_validation_error, provider_problems

    path = Path(path)
    shown = display or str(path)
    gpt_id = path.stem if gpt_id is None else gpt_id
    problems: list[SpecProblem] = []
    if not ID_PATTERN.match(gpt_id) or len(gpt_id) > 64:
        suggestion = re.sub(r"[^a-z0-9]+", "-", gpt_id.lower()).strip("-")[:64].strip("-") or "my-gpt"
        problems.append(
            SpecProblem(
                shown,
                "id",
                f"{gpt_id!r} (the file name) is not a valid GPT id: use at most 64 lowercase letters, digits and "
                f"dashes, e.g. rename the file to {suggestion}.yaml",
            )
        )
    try:
        doc: YamlDocument = read_yaml(path, display=shown)
    except SpecError as exc:
        raise SpecError([*problems, *exc.problems]) from None
    try:
        spec = GPTSpec.model_validate(doc.data)
    except ValidationError as exc:
        problems.extend(describe_validation_error(exc, doc, shown))
        problems.extend(_raw_problems(doc, shown, path.parent))
        raise SpecError(problems) from None
    problems.extend(provider_problems(spec.model, doc, shown, path.parent))
    folder = path.parent
    instructions = spec.instructions or ""
    sources = [path]
    for field_name, loc, relative in _spec_paths(spec):
        try:
            target = safe_join(folder, relative)
        except PathEscapeError as exc:
            problems.append(SpecProblem(shown, field_name, str(exc), doc.line_of(loc)))
            continue
        if field_name == "instructions_file":
            text, problem = _read_instructions(target, relative)
            if problem:
                problems.append(SpecProblem(shown, field_name, problem, doc.line_of(("instructions_file",))))
            else:
                instructions = text
                sources.append(target)
    if problems:
        raise SpecError(problems)
    return LoadedSpec(gpt_id, path, spec, instructions, tuple(sources))


def _spec_paths(spec: GPTSpec) -> Iterable[tuple[str, tuple, str]]:
    """Every path written in the spec, with its field; each must stay inside the spec's folder."""
    if spec.instructions_file:
        yield "instructions_file", ("instructions_file",), spec.instructions_file
    if spec.knowledge:
        for index, pattern in enumerate(spec.knowledge.files):
            yield f"knowledge.files[{index}]", ("knowledge", "files", index), pattern
    for index, tool in enumerate(spec.tools):
        if isinstance(tool, ActionTool):
            yield f"tools[{index}].action.openapi", ("tools", index, "action", "openapi"), tool.action.openapi


def _raw_problems(doc: YamlDocument, shown: str, folder: Path) -> list[SpecProblem]:
    """Provider and path problems found in the raw data when the whole spec did not validate."""
    from .spec_errors import provider_problems

    data = doc.data
    problems: list[SpecProblem] = []
    try:
        model = ModelConfig.model_validate(data.get("model") or {})
    except ValidationError:
        pass
    else:
        problems.extend(provider_problems(model, doc, shown, folder))
    value = data.get("instructions_file")
    if isinstance(value, str):
        try:
            safe_join(folder, value)
        except PathEscapeError as exc:
            problems.append(SpecProblem(shown, "instructions_file", str(exc), doc.line_of(("instructions_file",))))
    return problems


def _read_instructions(target: Path, relative: str) -> tuple[str, str | None]:
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return "", f"file not found: {relative}"
    except OSError as exc:
        return "", f"cannot read {relative}: {exc.strerror or exc}"
    if len(data) > MAX_INSTRUCTIONS_CHARS * 4:
        return "", f"{relative} is {len(data):,} bytes; instructions may be at most {MAX_INSTRUCTIONS_CHARS:,} characters"
    text = data.decode("utf-8", errors="replace").strip()
    if not text:
        return "", f"{relative} is empty"
    if len(text) > MAX_INSTRUCTIONS_CHARS:
        return "", f"{relative} has {len(text):,} characters; at most {MAX_INSTRUCTIONS_CHARS:,} are allowed"
    return text, None
