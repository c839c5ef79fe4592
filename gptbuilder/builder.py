"""The GPT builder without a UI: drafts to YAML, validation, atomic saves, knowledge uploads and forks."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from .errors import InputError, SpecError, SpecProblem, StorageError, storage_error
from .fingerprint import content_hash
from .loader import LoadedSpec, load_spec
from .spec import BUILTIN_TOOLS, ID_PATTERN
from .trust import mark_untrusted
from .yamlsafe import parse_yaml, read_yaml

MAX_UPLOAD_BYTES = 10_000_000
KNOWLEDGE_FOLDER = "knowledge"
# The draft's own fields, in the order a person reads a spec; everything else is kept as written.
FORM_FIELDS = ("name", "description", "category", "avatar", "author", "tags", "instructions", "conversation_starters")


@dataclass
class Draft:
    """What the builder form edits: the spec's common fields, plus every other field kept as written."""

    gpt_id: str = ""
    name: str = ""
    description: str = ""
    category: str = "qa"
    avatar: str = ""
    author: str = ""
    tags: list[str] = field(default_factory=list)
    instructions: str = ""
    conversation_starters: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    knowledge_files: list[str] = field(default_factory=list)
    builtin_tools: list[str] = field(default_factory=list)
    other_tools: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    knowledge_extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_data(cls, gpt_id: str, data: dict[str, Any]) -> Draft:
        """A draft from a spec's raw YAML mapping (unknown or advanced fields go to ``extra``)."""
        data = dict(data)
        draft = cls(gpt_id=gpt_id)
        for name in FORM_FIELDS:
            if name in data:
                value = data.pop(name)
                if name in ("tags", "conversation_starters"):
                    value = [str(v) for v in value] if isinstance(value, list) else [str(value)]
                setattr(draft, name, "" if value is None else value)
        model = data.pop("model", None)
        draft.model = dict(model) if isinstance(model, dict) else {}
        knowledge = data.pop("knowledge", None)
        if isinstance(knowledge, dict):
            knowledge = dict(knowledge)
            files = knowledge.pop("files", [])
            draft.knowledge_files = [files] if isinstance(files, str) else list(files or [])
            draft.knowledge_extra = knowledge
        for tool in data.pop("tools", None) or []:
            if isinstance(tool, str) and tool in BUILTIN_TOOLS:
                draft.builtin_tools.append(tool)
            else:
                draft.other_tools.append(tool)
        draft.extra = data
        return draft

    def to_data(self) -> dict[str, Any]:
        """The spec mapping this draft stands for; empty optional fields are left out."""
        data: dict[str, Any] = {}
        for name in FORM_FIELDS:
            value = getattr(self, name)
            if name == "instructions" and not value and "instructions_file" in self.extra:
                continue
            if name in ("name", "instructions") or value not in ("", None, []):
                data[name] = value.strip() if isinstance(value, str) and name != "instructions" else value
        model = {k: v for k, v in self.model.items() if v not in ("", None, [], {})}
        if model:
            data["model"] = model
        if self.knowledge_files or self.knowledge_extra:
            data["knowledge"] = {"files": list(self.knowledge_files), **self.knowledge_extra}
        tools = [*self.builtin_tools, *self.other_tools]
        if tools:
            data["tools"] = tools
        for key, value in self.extra.items():
            data.setdefault(key, value)
        return data

    def to_yaml(self) -> str:
        """The draft as spec YAML text."""
        return to_yaml(self.to_data())


class _Dumper(yaml.SafeDumper):
    """Writes multi-line text as `|` blocks, so instructions stay readable in the file."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value.strip("\n") or (value.endswith("\n") and "\n" in value) else None
    if style and any(line != line.rstrip() for line in value.splitlines()):
        style = None  # trailing spaces cannot live in a block scalar
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(data: dict[str, Any]) -> str:
    """Spec YAML text for a mapping: keys in the given order, unicode as is."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def check_id(gpt_id: str) -> str | None:
    """Why ``gpt_id`` cannot name a spec file, or None when it can."""
    if not gpt_id:
        return "give the GPT an id (lowercase letters, digits and dashes), e.g. my-gpt"
    if not ID_PATTERN.match(gpt_id) or len(gpt_id) > 64:
        return f"{gpt_id!r} is not a valid GPT id: use at most 64 lowercase letters, digits and dashes"
    return None


def suggest_id(name: str) -> str:
    """A GPT id made from a display name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-") or "my-gpt"


def _display(gpts_dir: Path, gpt_id: str) -> str:
    return f"{gpts_dir.name or 'gpts'}/{gpt_id}.yaml"


def load_draft(gpt_id: str, text: str, gpts_dir: str | Path) -> LoadedSpec:
    """Validate spec text as `gptbuilder validate --untrusted` would in ``gpts_dir/<gpt_id>.yaml``; SpecError if invalid.

    Text from the builder is untrusted (see `trust`). It is checked from a temporary file in the GPTs folder,
    so relative paths resolve as they will once saved; the returned spec points at that (already removed) file.
    """
    gpts_dir = Path(gpts_dir)
    problem = check_id(gpt_id)
    if problem:
        raise SpecError([SpecProblem(_display(gpts_dir, gpt_id or "?"), "id", problem)])
    gpts_dir.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(gpts_dir, gpt_id)
    try:
        _write(tmp, text, f"a draft of {gpt_id}.yaml")
        return load_spec(tmp, display=_display(gpts_dir, gpt_id), gpt_id=gpt_id, trusted=False)
    finally:
        tmp.unlink(missing_ok=True)


def validate(gpt_id: str, text: str, gpts_dir: str | Path) -> list[SpecProblem]:
    """Every problem of the spec text, with the same messages as `gptbuilder validate --untrusted`; empty when valid."""
    try:
        load_draft(gpt_id, text, gpts_dir)
    except SpecError as exc:
        return exc.problems
    return []


@dataclass(frozen=True)
class SaveResult:
    """A saved spec: where, its new fingerprint, and a warning when it overwrote someone else's edit."""

    path: Path
    fingerprint: str
    warning: str | None = None


def save(gpt_id: str, text: str, gpts_dir: str | Path, *, loaded_fingerprint: str | None = None) -> SaveResult:
    """Validate as untrusted, then atomically write ``gpts_dir/<gpt_id>.yaml``; SpecError (file untouched) when invalid.

    The spec is marked untrusted (``<gpt_id>.untrusted`` beside it) before it is written, so every later
    load keeps it untrusted until the operator deletes the marker.

    ``loaded_fingerprint`` is what the editor loaded (None for a new GPT): when the file changed on disk
    since, the save still wins (last write wins) and the result carries a warning.
    """
    gpts_dir = Path(gpts_dir)
    problem = check_id(gpt_id)
    if problem:
        raise SpecError([SpecProblem(_display(gpts_dir, gpt_id or "?"), "id", problem)])
    gpts_dir.mkdir(parents=True, exist_ok=True)
    target = gpts_dir / f"{gpt_id}.yaml"
    tmp = _temp_path(gpts_dir, gpt_id)
    try:
        _write(tmp, text, target.name)
        load_spec(tmp, display=_display(gpts_dir, gpt_id), gpt_id=gpt_id, trusted=False)
        on_disk = content_hash(target)
        warning = None
        if on_disk != loaded_fingerprint:
            if loaded_fingerprint is None:
                warning = f"{target.name} already existed and was replaced by this GPT"
            elif on_disk is None:
                warning = f"{target.name} had been deleted elsewhere; saved again"
            else:
                warning = f"{target.name} was changed elsewhere after you opened it; your version replaced it"
        try:
            mark_untrusted(target)
        except OSError as exc:
            raise (storage_error(exc, target.name) or StorageError(f"could not write {target.name}: {exc}")) from None
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return SaveResult(target, content_hash(target) or "", warning)


def _temp_path(folder: Path, gpt_id: str) -> Path:
    # hidden and not *.yaml: the store never lists it, even while it exists
    return folder / f".{gpt_id}.{uuid.uuid4().hex[:12]}.tmp"


def _write(path: Path, text: str | bytes, what: str) -> None:
    """Write a new file in full and to the disk, or raise StorageError naming ``what`` (the caller removes it)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        with open(path, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise (storage_error(exc, what) or StorageError(f"could not write {what}: {exc.strerror or exc}")) from None


def upload_suffixes() -> frozenset[str]:
    """File types a knowledge upload may have: exactly those the knowledge loaders read."""
    from .knowledge.loaders import SUPPORTED_SUFFIXES

    return SUPPORTED_SUFFIXES


def check_upload_name(name: str) -> str:
    """The upload's file type (suffix), or InputError for a name that tries to be a path or an unknown type."""
    if not name or "\x00" in name:
        raise InputError("the uploaded file has no name")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if len(parts) != 1 or parts[0] in (".", "..") or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise InputError(f"refused upload {name!r}: a file name may not contain a path")
    suffix = PurePosixPath(parts[0]).suffix.lower()
    allowed = upload_suffixes()
    if suffix not in allowed:
        kinds = ", ".join(sorted(allowed))
        raise InputError(f"refused upload {name!r}: unsupported file type {suffix or '(no suffix)'!r}; use one of {kinds}")
    return suffix


def received_upload(path: str | Path, upload_dir: str | Path) -> Path:
    """The real path of a file the upload handler received, or InputError for a path anywhere else.

    A client names a file's path itself (a ``FileData``), so without this any file the server can read
    could be copied into a GPT's knowledge and quoted back (issue 12).
    """
    real = Path(os.path.realpath(path))
    root = Path(os.path.realpath(upload_dir))
    if not real.is_relative_to(root) or real == root or not real.is_file():
        raise InputError(f"refused upload {Path(path).name!r}: only files uploaded to this server are accepted, not a server path")
    return real


def store_upload(
    gpt_id: str, source: str | Path, name: str, gpts_dir: str | Path, *, max_bytes: int = MAX_UPLOAD_BYTES
) -> str:
    """Copy an uploaded knowledge file under ``gpts/knowledge/<gpt_id>/`` with a safe generated name.

    Returns its path relative to the GPTs folder (what goes into ``knowledge.files``). Refuses, with
    InputError and nothing written, names with a path, unknown types and files over ``max_bytes``.
    """
    problem = check_id(gpt_id)
    if problem:
        raise InputError(f"save the GPT under an id before uploading: {problem}")
    suffix = check_upload_name(name)
    source = Path(source)
    size = source.stat().st_size
    if size > max_bytes:
        raise InputError(f"refused upload {name!r}: {size:,} bytes is over the {max_bytes:,}-byte limit")
    if size == 0:
        raise InputError(f"refused upload {name!r}: the file is empty")
    data = source.read_bytes()[: max_bytes + 1]
    stem = suggest_id(PurePosixPath(name).stem)[:40]
    safe = f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}{suffix}"
    folder = Path(gpts_dir) / KNOWLEDGE_FOLDER / gpt_id
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe
    if not target.exists():
        tmp = folder / f".{uuid.uuid4().hex}.tmp"
        try:
            _write(tmp, data, f"the upload {name!r}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return f"{KNOWLEDGE_FOLDER}/{gpt_id}/{safe}"


def open_draft(path: str | Path) -> tuple[Draft, str | None]:
    """A draft from a spec file as written (broken specs too, as long as they parse) and its fingerprint."""
    path = Path(path)
    doc = read_yaml(path)
    return Draft.from_data(path.stem, doc.data), content_hash(path)


def draft_from_text(gpt_id: str, text: str) -> Draft:
    """A draft from YAML text; SpecError when it does not parse into a mapping."""
    return Draft.from_data(gpt_id, parse_yaml(text, display=f"{gpt_id}.yaml").data)


def free_id(base: str, taken: Iterable[str]) -> str:
    """``base`` itself when unused, else ``base-2``, ``base-3``…"""
    taken = set(taken)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def fork(path: str | Path, gpts_dir: str | Path) -> Draft:
    """A copy of the spec at ``path`` as a new, unsaved GPT with a free id and a "(copy)" name."""
    draft, _ = open_draft(path)
    taken = {p.stem for p in Path(gpts_dir).glob("*.yaml")}
    draft.gpt_id = free_id(suggest_id(f"{draft.gpt_id}-copy")[:64], taken)
    name = str(draft.name or draft.gpt_id)
    draft.name = (name[:73] + " (copy)") if len(name) > 73 else f"{name} (copy)"
    return draft


__all__ = [
    "MAX_UPLOAD_BYTES",
    "Draft",
    "SaveResult",
    "check_id",
    "check_upload_name",
    "draft_from_text",
    "fork",
    "free_id",
    "load_draft",
    "open_draft",
    "received_upload",
    "save",
    "store_upload",
    "suggest_id",
    "to_yaml",
    "upload_suffixes",
    "validate",
]
