"""Spec trust levels: what a spec saved through the store (the builder, its API) may not do.

The operator's own spec files are trusted. A spec written through the store comes from whoever holds a
key, so it may not run the server's code (function tools), reach private networks, load files by path,
send requests (and keys) to endpoints (a model's base_url, a remote moderation url) or read environment
variables the operator did not allow, or name files outside its own folder, ``knowledge/<id>/`` beside the
spec (where the builder puts its uploads).

The builder marks what it saves with ``<id>.untrusted`` beside ``<id>.yaml``; every later load from disk
sees the marker, so a saved spec stays untrusted. The operator trusts it by deleting the marker.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .paths import PathEscapeError, safe_join
from .settings import ALLOWED_BASE_URLS_ENV, ALLOWED_SECRET_ENVS_ENV, TrustPolicy

MARKER_SUFFIX = ".untrusted"
OWN_FOLDER = "knowledge"  # an untrusted GPT's files live in knowledge/<id>/, where builder.store_upload writes
_SETTING_PREFIX = "GPTBUILDER_"
_GLOB = re.compile(r"[*?\[]")
_IMAGE = re.compile(r"\.(png|jpe?g|gif|webp|svg|ico|bmp)$", re.IGNORECASE)
_P = TypeVar("_P", bound=PurePath)
_MARKER_TEXT = (
    "This GPT was saved through the gptbuilder store, so it is loaded as UNTRUSTED: no function tools, no\n"
    "private networks, no model files by path, only allowed base URLs and environment variables, and only\n"
    "its own files (knowledge/<id>/). After reviewing the spec, delete this file to trust it.\n"
)


def marker_path(spec_path: _P) -> _P:
    """The file that marks ``gpts/<id>.yaml`` as saved through the store: ``gpts/<id>.untrusted``."""
    return spec_path.with_suffix(MARKER_SUFFIX)


def is_marked_untrusted(spec_path: Path) -> bool:
    """Whether the store saved this spec file (its marker is beside it)."""
    return marker_path(spec_path).exists()


def mark_untrusted(spec_path: Path) -> Path:
    """Write the marker beside ``spec_path`` (before the spec itself, so it is never unmarked for a moment)."""
    marker = marker_path(spec_path)
    if not marker.exists():
        tmp = marker.with_name(f".{marker.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            tmp.write_text(_MARKER_TEXT, encoding="utf-8")
            os.replace(tmp, marker)
        finally:
            tmp.unlink(missing_ok=True)
    return marker


def own_folder(gpt_id: str) -> str:
    """The folder, relative to the spec's, that an untrusted GPT's files must be in."""
    return f"{OWN_FOLDER}/{gpt_id}/"


@dataclass
class TrustReport:
    """What an untrusted spec may not use: (field, message) problems, and the fields not to read or check."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)

    def refuse(self, field_name: str, message: str) -> None:
        self.problems.append((field_name, message))
        self.refused.add(field_name)


def untrusted_problems(
    data: dict[str, Any], *, gpt_id: str, folder: Path, marker: str, policy: TrustPolicy | None = None
) -> TrustReport:
    """Everything in a spec's raw YAML mapping that a spec saved through the store may not use.

    Works on raw data, so a spec that is invalid elsewhere still gets these problems; ``marker`` is the
    file the operator deletes to trust the spec, named in the messages.
    """
    policy = policy or TrustPolicy.from_env()
    report = TrustReport()
    trust_hint = f"the operator can trust the spec by deleting {marker} after reviewing it"
    own = own_folder(gpt_id)

    def file(field_name: str, relative: Any) -> None:
        if isinstance(relative, str) and not _inside(folder, gpt_id, relative):
            report.refuse(field_name, f"{relative!r} is outside this GPT's own folder {own}; specs saved through the "
                          f"store may only name their own files (upload them in the builder), or {trust_hint}")

    if data.get("allow_private_network") is True:
        report.refuse("allow_private_network", f"private networks are not allowed for specs saved through the store; "
                      f"{trust_hint}")
    file("instructions_file", data.get("instructions_file"))
    for name in ("avatar",):
        if _is_path_avatar(data.get(name)):
            file(name, data.get(name))
    widget = data.get("widget")
    if isinstance(widget, dict) and _is_path_avatar(widget.get("avatar")):
        file("widget.avatar", widget.get("avatar"))
    model = data.get("model")
    if isinstance(model, dict):
        _model(model, report, folder=folder, policy=policy, trust_hint=trust_hint)
    knowledge = data.get("knowledge")
    if isinstance(knowledge, dict):
        files = knowledge.get("files")
        for index, pattern in enumerate([files] if isinstance(files, str) else files if isinstance(files, list) else []):
            file(f"knowledge.files[{index}]", pattern)
        rerank, entailment = knowledge.get("rerank"), knowledge.get("entailment")
        models = {
            "knowledge.embedding_model": knowledge.get("embedding_model"),
            "knowledge.rerank.model": rerank.get("model") if isinstance(rerank, dict) else None,
            "knowledge.entailment.model": entailment.get("model") if isinstance(entailment, dict) else None,
        }
        for where, model_name in models.items():
            if isinstance(model_name, str) and _is_path_name(model_name, folder):
                report.refuse(where, f"{model_name!r} is a path; specs saved through the store may only name models, "
                              f"not files on the server; {trust_hint}")
    moderation = data.get("moderation")
    remote = moderation.get("remote") if isinstance(moderation, dict) else None
    if isinstance(remote, dict):
        _remote_moderation(remote, report, policy=policy, trust_hint=trust_hint)
    tools = data.get("tools")
    for index, entry in enumerate(tools if isinstance(tools, list) else []):
        where = f"tools[{index}]"
        if (isinstance(entry, str) and ":" in entry) or (isinstance(entry, dict) and "function" in entry):
            report.refuse(where, "function tools ('package.module:function') run code in the server and are not "
                          f"allowed for specs saved through the store; {trust_hint}")
        mcp = entry.get("mcp") if isinstance(entry, dict) else None
        if isinstance(mcp, dict) and mcp.get("command") is not None:
            report.refuse(where, "MCP servers run as a command ('mcp: {command: ...}') run code on the server and are not "
                          f"allowed for specs saved through the store; reach the MCP server by its url, or {trust_hint}")
        action = entry.get("action") if isinstance(entry, dict) else None
        if isinstance(action, dict):
            file(f"{where}.action.openapi", action.get("openapi"))
        for kind, config in (("action", action), ("mcp", mcp)):
            auth = config.get("auth") if isinstance(config, dict) else None
            for key, value in (auth.items() if isinstance(auth, dict) else ()):
                if str(key).endswith("_env"):
                    _env(f"{where}.{kind}.auth.{key}", value, report, policy)
    return report


def _model(model: dict[str, Any], report: TrustReport, *, folder: Path, policy: TrustPolicy, trust_hint: str) -> None:
    name = model.get("name")
    if isinstance(name, str) and _is_path_name(name, folder):
        report.refuse("model.name", f"{name!r} is a path; specs saved through the store may only name models "
                      f"(a registry name or a Hugging Face id), not files on the server; {trust_hint}")
    _endpoint("model.base_url", model.get("base_url"), report, policy)
    _env("model.api_key_env", model.get("api_key_env"), report, policy)
    options = model.get("options")
    if isinstance(options, dict) and options.get("trust_remote_code"):
        report.refuse("model.options.trust_remote_code", "running a model's own code is not allowed for specs saved "
                      f"through the store; {trust_hint}")


def _endpoint(field_name: str, url: Any, report: TrustReport, policy: TrustPolicy) -> None:
    """Refuse a URL (where requests, and keys, are sent) outside the operator's allowed prefixes."""
    if isinstance(url, str) and not any(url_allowed(url, prefix) for prefix in policy.base_urls):
        allowed = f" (allowed now: {', '.join(policy.base_urls)})" if policy.base_urls else ""
        report.refuse(field_name, f"{url} is not an endpoint allowed for specs saved through the store"
                      f"{allowed}; the operator can allow it with {ALLOWED_BASE_URLS_ENV}={url} "
                      "(comma-separated URL prefixes)")


def _remote_moderation(remote: dict[str, Any], report: TrustReport, *, policy: TrustPolicy, trust_hint: str) -> None:
    _endpoint("moderation.remote.url", remote.get("url"), report, policy)
    _env("moderation.remote.api_key_env", remote.get("api_key_env"), report, policy)
    if remote.get("allow_private_network") is True:
        report.refuse("moderation.remote.allow_private_network", "private networks are not allowed for specs saved "
                      f"through the store; {trust_hint}")


def _env(field_name: str, name: Any, report: TrustReport, policy: TrustPolicy) -> None:
    if not isinstance(name, str) or not name:
        return
    if name.upper().startswith(_SETTING_PREFIX):
        report.refuse(field_name, f"{name} holds gptbuilder's own settings or keys; specs saved through the store may "
                      "never read GPTBUILDER_* variables")
    elif name not in policy.secret_envs:
        report.refuse(field_name, f"environment variable {name} is not allowed for specs saved through the store; "
                      f"the operator can allow it with {ALLOWED_SECRET_ENVS_ENV}={name} (comma-separated names)")


def url_allowed(url: str, prefix: str) -> bool:
    """Whether ``url`` is under the allowed ``prefix``: same scheme, host and port, and a path below its path."""
    try:
        got, want = urlsplit(url.strip()), urlsplit(prefix.strip())
        got_port, want_port = got.port or _default_port(got.scheme), want.port or _default_port(want.scheme)
    except ValueError:
        return False
    if not want.hostname or got.username is not None or got.password is not None:
        return False  # userinfo could hide the real host from a reader of the spec
    if (got.scheme.lower(), got.hostname, got_port) != (want.scheme.lower(), want.hostname, want_port):
        return False
    base = want.path.rstrip("/")
    return got.path.rstrip("/") == base or got.path.startswith(base + "/")


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme.lower())


def _is_path_name(name: str, folder: Path) -> bool:
    """Whether a model name points at the file system rather than naming a model (registry name or hub id)."""
    text = name.strip()
    posix = PurePosixPath(text.replace("\\", "/"))
    if (not text or "\x00" in text or "\\" in text or text.startswith(("/", "~", ".")) or re.match(r"^[A-Za-z]:", text)
            or ".." in posix.parts or text.lower().endswith(".gguf")):
        return True
    try:
        return (folder / text).exists() or Path(text).exists()  # loaders try both before the hub
    except (OSError, ValueError):
        return True


def _is_path_avatar(avatar: Any) -> bool:
    return isinstance(avatar, str) and bool("/" in avatar or "\\" in avatar or _IMAGE.search(avatar.strip()))


def _inside(folder: Path, gpt_id: str, relative: str) -> bool:
    """Whether a spec path (or glob) stays in ``knowledge/<gpt_id>/``; paths escaping the folder are the loader's to report."""
    try:
        safe_join(folder, relative)
    except PathEscapeError:
        return True
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    fixed: list[str] = []
    for part in parts:
        if _GLOB.search(part):
            break
        fixed.append(part)
    own = folder.resolve() / OWN_FOLDER / gpt_id  # not resolved: a symlinked own folder leads elsewhere
    return bool(fixed) and folder.joinpath(*fixed).resolve().is_relative_to(own)
