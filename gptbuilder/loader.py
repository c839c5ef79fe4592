"""Load a spec file: safe YAML, the schema, instruction files, path rules, provider and tool checks.

Every problem is reported at once, in line order: a check runs on each part of the spec that is valid
on its own, even when another part is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import ModelError, SpecError, SpecProblem, did_you_mean
from .paths import PathEscapeError, matching_files, safe_join
from .settings import TrustPolicy
from .spec import (
    ID_PATTERN,
    MAX_INSTRUCTIONS_CHARS,
    ActionTool,
    GPTSpec,
    ModelConfig,
    ToolEntry,
    instructions_source_problem,
)
from .spec_errors import describe_validation_error
from .trust import TrustReport, is_marked_untrusted, marker_path, untrusted_problems
from .yamlsafe import Loc, YamlDocument, read_yaml


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with what the file implies: its id, folder, resolved instructions and the files it read."""

    id: str
    path: Path
    spec: GPTSpec
    instructions: str
    sources: tuple[Path, ...]
    trusted: bool = True  # False: saved through the store, held to trust.untrusted_problems

    @property
    def folder(self) -> Path:
        """The folder every relative path of this spec is resolved against."""
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        """Resolve a path written in the spec, refusing anything outside the spec's folder."""
        return safe_join(self.folder, relative)


@dataclass(frozen=True)
class SpecReport:
    """What checking one spec file found: the spec when it has no errors, and errors and warnings in line order."""

    file: str
    loaded: LoadedSpec | None
    errors: tuple[SpecProblem, ...] = ()
    warnings: tuple[SpecProblem, ...] = ()


def load_spec(
    path: str | Path,
    *,
    display: str | None = None,
    gpt_id: str | None = None,
    trusted: bool | None = None,
    policy: TrustPolicy | None = None,
) -> LoadedSpec:
    """Read, validate and resolve one spec file; raise SpecError listing every problem in it, by line.

    ``gpt_id`` overrides the id taken from the file name (the builder validates drafts in temporary files).
    ``trusted`` None: trusted unless the store marked the file (``<id>.untrusted`` beside it); False holds the
    spec to what specs saved through the store may use (`trust.untrusted_problems`, allow-lists from ``policy``).
    """
    report = check_spec(path, display=display, gpt_id=gpt_id, deep=False, trusted=trusted, policy=policy)
    if report.errors or report.loaded is None:
        raise SpecError(report.errors)
    return report.loaded


def check_spec(
    path: str | Path,
    *,
    display: str | None = None,
    gpt_id: str | None = None,
    deep: bool = True,
    trusted: bool | None = None,
    policy: TrustPolicy | None = None,
) -> SpecReport:
    """Every problem of one spec file, for `gptbuilder validate`; ``trusted`` and ``policy`` as in `load_spec`.

    ``deep`` adds what `load_spec` leaves to compile time: importing function tools (they run code, so only
    for trusted specs) and warnings for knowledge globs that match no file.
    """
    path = Path(path)
    if trusted is None:
        trusted = not is_marked_untrusted(path)
    shown = display or str(path)
    gpt_id = path.stem if gpt_id is None else gpt_id
    errors = _id_problems(gpt_id, shown)
    try:
        doc = read_yaml(path, display=shown)
    except SpecError as exc:
        return SpecReport(shown, None, _in_order([*errors, *exc.problems], shown))
    spec: GPTSpec | None = None
    try:
        spec = GPTSpec.model_validate(doc.data)
    except ValidationError as exc:
        errors.extend(describe_validation_error(exc, doc, shown))
        parts = _Parts.from_raw(doc.data)
        problem = instructions_source_problem(doc.data.get("instructions"), doc.data.get("instructions_file"))
        if problem:
            errors.append(SpecProblem(shown, "", problem))
    else:
        parts = _Parts.from_spec(spec)
    trust = TrustReport()
    if not trusted:
        marker = str(marker_path(PurePath(shown)))  # as the operator sees it, not a draft's temporary name
        trust = untrusted_problems(doc.data, gpt_id=gpt_id, folder=path.parent, marker=marker, policy=policy)
    checker = _Checker(doc, shown, path.parent, refused=trust.refused)
    for field_name, message in trust.problems:
        checker.problem(field_name, message)
    instructions, sources = checker.run(parts, deep=deep, imports=deep and trusted)
    errors.extend(checker.errors)
    loaded = None
    if spec is not None and not errors:
        if marker_path(path).exists():  # deleting the marker changes the stamps, so the store reloads it as trusted
            sources.append(marker_path(path))
        loaded = LoadedSpec(gpt_id, path, spec, spec.instructions or instructions, (path, *sources), trusted)
    return SpecReport(shown, loaded, _in_order(errors, shown), _in_order(checker.warnings, shown))


def provider_problems(model: ModelConfig, doc: YamlDocument, file: str, folder: Path) -> list[SpecProblem]:
    """Check `model.provider` against the installed providers, then let the provider check its config."""
    from .models.registry import get_provider, provider_names

    names = provider_names()
    provider = model.provider
    line = doc.line_of(("model", "provider"))
    if provider not in names:
        message = f"unknown provider {provider!r}{did_you_mean(provider, names)} (installed: {', '.join(names)})"
        return [SpecProblem(file, "model.provider", message, line)]
    try:
        checks = get_provider(provider).check(model, base_dir=folder)
    except Exception as exc:  # a plugin's own bug must not take validation down
        message = str(exc) if isinstance(exc, ModelError) else f"provider {provider!r} failed its checks: {type(exc).__name__}: {exc}"
        return [SpecProblem(file, "model.provider", message, line)]
    return [SpecProblem(file, f"model.{name}", message, doc.line_of(_loc(f"model.{name}"))) for name, message in checks]


# ----- the parts of a spec the checks look at -------------------------------------------------------


_TOOL = TypeAdapter(ToolEntry)


@dataclass
class _Parts:
    """The spec's sections that file and plugin checks need, each present only when it is valid on its own."""

    model: ModelConfig | None = None
    instructions_file: str | None = None
    knowledge_files: list[tuple[int, str]] = field(default_factory=list)
    tools: list[tuple[int, Any]] = field(default_factory=list)
    allow_private: bool = False

    @classmethod
    def from_spec(cls, spec: GPTSpec) -> _Parts:
        files = spec.knowledge.files if spec.knowledge else []
        return cls(spec.model, spec.instructions_file, list(enumerate(files)), list(enumerate(spec.tools)),
                   spec.allow_private_network)

    @classmethod
    def from_raw(cls, data: dict[str, Any]) -> _Parts:
        """The same from YAML data that failed validation somewhere, so the checks still see the valid parts."""
        knowledge = data.get("knowledge")
        files = knowledge.get("files") if isinstance(knowledge, dict) else None
        files = [files] if isinstance(files, str) else files if isinstance(files, list) else []
        tools = data.get("tools")
        instructions_file = data.get("instructions_file")
        return cls(
            model=_valid(ModelConfig, data.get("model") or {}),
            instructions_file=instructions_file if isinstance(instructions_file, str) else None,
            knowledge_files=[(index, pattern) for index, pattern in enumerate(files) if isinstance(pattern, str)],
            tools=[(index, entry) for index, raw in enumerate(tools if isinstance(tools, list) else [])
                   if (entry := _valid(_TOOL, raw)) is not None],
            allow_private=data.get("allow_private_network") is True,
        )


def _valid(kind: type[BaseModel] | TypeAdapter, value: Any) -> Any:
    try:
        return kind.validate_python(value) if isinstance(kind, TypeAdapter) else kind.model_validate(value)
    except ValidationError:
        return None


class _Checker:
    """The checks beyond the schema: the provider, paths and the files they name, and each tool's own check."""

    def __init__(self, doc: YamlDocument, shown: str, folder: Path, *, refused: set[str] | None = None):
        self.doc, self.shown, self.folder = doc, shown, folder
        self.refused = refused or set()  # fields an untrusted spec may not use: not read, not checked further
        self.errors: list[SpecProblem] = []
        self.warnings: list[SpecProblem] = []

    def problem(self, field_name: str, message: str, *, warning: bool = False) -> None:
        found = SpecProblem(self.shown, field_name, message, self.doc.line_of(_loc(field_name)))
        (self.warnings if warning else self.errors).append(found)

    def path(self, field_name: str, relative: str) -> Path | None:
        try:
            return safe_join(self.folder, relative)
        except PathEscapeError as exc:
            self.problem(field_name, str(exc))
            return None

    def run(self, parts: _Parts, *, deep: bool, imports: bool) -> tuple[str, list[Path]]:
        """Run every check; the instructions read from `instructions_file` and the files read on the way."""
        if parts.model is not None:
            # a refused model path is never opened: a provider's check would echo the file's first bytes
            model = parts.model.model_copy(update={"name": None}) if "model.name" in self.refused else parts.model
            self.errors.extend(provider_problems(model, self.doc, self.shown, self.folder))
        instructions, sources = "", []
        if (parts.instructions_file is not None and "instructions_file" not in self.refused
                and (target := self.path("instructions_file", parts.instructions_file))):
            instructions, problem = _read_instructions(target, parts.instructions_file)
            if problem:
                self.problem("instructions_file", problem)
            else:
                sources.append(target)
        for index, pattern in parts.knowledge_files:
            if f"knowledge.files[{index}]" in self.refused:
                continue
            target = self.path(f"knowledge.files[{index}]", pattern)
            if target is not None and deep and not matching_files(target):
                self.problem(f"knowledge.files[{index}]", f"{pattern!r} matches no file; the GPT has nothing to "
                             "answer from there (paths are relative to the spec's folder)", warning=True)
        for index, entry in parts.tools:
            if not {f"tools[{index}]", f"tools[{index}].action.openapi"} & self.refused:
                sources.extend(self.tool(index, entry, allow_private=parts.allow_private, imports=imports))
        return instructions, sources

    def tool(self, index: int, entry: Any, *, allow_private: bool, imports: bool) -> list[Path]:
        """Check one `tools:` entry; the files it names that exist (an action's OpenAPI document)."""
        from .tools.compile import check_tool

        named: list[Path] = []
        if isinstance(entry, ActionTool):
            target = self.path(f"tools[{index}].action.openapi", entry.action.openapi)
            if target is None:
                return []  # reported; the document is not read
            if target.is_file():
                named.append(target)
        for found in check_tool(entry, folder=self.folder, allow_private=allow_private, imports=imports):
            if found.file is None:
                self.problem(f"tools[{index}]" + (f".{found.field}" if found.field else ""), found.message)
            else:  # inside the file the entry names, shown beside the spec as the user sees it
                self.errors.append(SpecProblem(str(PurePath(self.shown).parent / found.file), found.field,
                                               found.message, found.line))
        return named


def _id_problems(gpt_id: str, shown: str) -> list[SpecProblem]:
    if ID_PATTERN.match(gpt_id) and len(gpt_id) <= 64:
        return []
    suggestion = re.sub(r"[^a-z0-9]+", "-", gpt_id.lower()).strip("-")[:64].strip("-") or "my-gpt"
    return [SpecProblem(
        shown,
        "id",
        f"{gpt_id!r} (the file name) is not a valid GPT id: use at most 64 lowercase letters, digits and "
        f"dashes, e.g. rename the file to {suggestion}.yaml",
    )]


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


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _loc(field_name: str) -> Loc:
    """`tools[2].options.timeot` → ("tools", 2, "options", "timeot"), the key YamlDocument keeps lines by."""
    return tuple(int(index) if index else name for name, index in _PART.findall(field_name))


def _in_order(problems: list[SpecProblem], shown: str) -> tuple[SpecProblem, ...]:
    """The spec's own problems by line (file-wide ones first), then those in the files it names."""
    unique = list(dict.fromkeys(problems))
    return tuple(sorted(unique, key=lambda p: (p.file != shown, p.file, p.line is not None, p.line or 0)))
