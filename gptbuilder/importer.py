"""`gptbuilder import`: turn an OpenAI GPT or Assistant export, or a Dify chatbot DSL file, into a spec.

Every field of the source is accounted for: mapped onto the spec, `ignored` (metadata such as ids and
timestamps, or features switched off) or `lost` (a feature gptbuilder cannot reproduce from the file,
such as knowledge files the export does not contain). A spec with lost parts is written only on request.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import InputError, SpecError
from .spec import ID_PATTERN, GPTSpec

Format = Literal["openai-gpt", "openai-assistant", "dify"]
FORMAT_NAMES = {"openai-gpt": "OpenAI GPT export", "openai-assistant": "OpenAI Assistant", "dify": "Dify DSL"}
MAX_IMPORT_BYTES = 10_000_000
MAX_STARTERS = 12
OPENAI_KEY_ENV = "OPENAI_API_KEY"
# Dify model providers an OpenAI-compatible endpoint serves; "langgenius/openai/openai" is the plugin-era id.
DIFY_OPENAI_COMPATIBLE = {"openai": None, "ollama": "http://127.0.0.1:11434/v1", "openai_api_compatible": None}
DIFY_TOOLS = {("time", "current_time"): "current_time", ("webscraper", "webscraper"): "fetch_url"}


@dataclass(frozen=True)
class Unmapped:
    """A source field that did not become part of the spec, and why."""

    field: str
    reason: str
    lost: bool  # True: a feature the GPT will lack; False: metadata or a feature that was off

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"field": self.field, "reason": self.reason, "lost": self.lost}


@dataclass
class ImportResult:
    """A converted spec (plain data, valid), the files it needs beside it, and what could not be mapped."""

    format: Format
    gpt_id: str
    spec: dict[str, Any]
    unmapped: list[Unmapped] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path relative to the spec → text (action OpenAPI)

    @property
    def lost(self) -> list[Unmapped]:
        """Features the imported GPT will lack."""
        return [u for u in self.unmapped if u.lost]

    def to_yaml(self, source: str) -> str:
        """The spec file's text, with a header saying where it came from and what it lost."""
        import yaml

        header = [f"# Imported from {source} ({FORMAT_NAMES[self.format]}) by `gptbuilder import`."]
        header += [f"# NOT MAPPED: {u.field}: {u.reason}" for u in self.lost]
        class Dumper(yaml.SafeDumper):
            """Multi-line text (instructions) as a literal block, the way people write specs."""

        def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
            style = "|" if "\n" in value else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        Dumper.add_representer(str, text)
        body = yaml.dump(self.spec, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)
        return "\n".join(header) + "\n" + body


def convert(path: str | Path) -> ImportResult:
    """Read an export file and convert it; InputError when it is unreadable or of no known format."""
    path = Path(path)
    data = _read(path)
    kind = detect(data)
    if kind is None:
        raise InputError(
            f"{path}: not an OpenAI GPT export (JSON with 'gizmo'), an OpenAI Assistant (JSON with "
            "\"object\": \"assistant\") or a Dify DSL file (YAML with 'kind: app' and 'app.mode')"
        )
    converter: Callable[[dict[str, Any]], ImportResult] = {
        "openai-gpt": _from_gpt,
        "openai-assistant": _from_assistant,
        "dify": _from_dify,
    }[kind]
    result = converter(data)
    try:
        GPTSpec.model_validate(result.spec)
    except Exception as exc:  # our own mapping produced an invalid spec: say so plainly
        raise InputError(f"{path}: the converted spec is not valid: {exc}") from None
    return result


def detect(data: Any) -> Format | None:
    """Which export a parsed file is, or None."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("gizmo"), dict):
        return "openai-gpt"
    if data.get("object") == "assistant":
        return "openai-assistant"
    if data.get("kind") == "app" and isinstance(data.get("app"), dict) and "mode" in data["app"]:
        return "dify"
    return None


def write(result: ImportResult, out: Path, *, source: str, force: bool = False) -> list[Path]:
    """Write the spec (and its action files) to ``out``; refuses lost parts or existing files unless forced."""
    from .loader import load_spec

    if result.lost and not force:
        raise InputError(
            f"nothing written: {len(result.lost)} part(s) of {source} cannot be mapped (listed above); "
            "pass --force to write the partial spec anyway"
        )
    targets = [out, *(out.parent / relative for relative in result.files)]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise InputError(f"{', '.join(map(str, existing))} already exists; pass --force to overwrite")
    if not ID_PATTERN.match(out.stem):
        raise InputError(f"{out.name}: the file name is the GPT's id: use lowercase letters, digits and dashes")
    out.parent.mkdir(parents=True, exist_ok=True)
    for relative, text in result.files.items():
        _atomic_write(out.parent / relative, text)
    _atomic_write(out, result.to_yaml(source))
    try:
        load_spec(out)
    except SpecError as exc:  # pragma: no cover - convert() validated the data already
        raise InputError(f"{out}: the written spec does not load: {exc}") from None
    return targets


# ----- OpenAI ------------------------------------------------------------------------------------


def _from_gpt(data: dict[str, Any]) -> ImportResult:
    gizmo = data["gizmo"]
    display = gizmo.get("display") or {}
    result = _begin("openai-gpt", _text(display.get("name")) or "Imported GPT", gizmo.get("instructions"), "gizmo")
    spec = result.spec
    _description(spec, display.get("description"), result, "gizmo.display.description")
    _starters(spec, display.get("prompt_starters"), result, "gizmo.display.prompt_starters")
    if _text(display.get("welcome_message")):
        spec["widget"] = {"greeting": _text(display["welcome_message"])[:1000]}
    if display.get("profile_picture_url"):
        result.unmapped.append(
            Unmapped("gizmo.display.profile_picture_url", "the picture is not downloaded; set avatar to an emoji or a file", False)
        )
    model = gizmo.get("model")
    if isinstance(model, str) and model:
        spec["model"] = {"provider": "openai", "name": model, "api_key_env": OPENAI_KEY_ENV}
    tools: list[Any] = []
    for index, tool in enumerate(data.get("tools") or []):
        where = f"tools[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "python":
            tools.append("python")
        elif kind == "plugins_prototype":
            tools.append(_gpt_action(tool.get("metadata") or {}, where, result, len(result.files) + 1))
        elif kind == "browser":
            result.unmapped.append(Unmapped(where, "web browsing (search) has no equivalent; fetch_url reads a given URL", True))
        elif kind == "dalle":
            result.unmapped.append(Unmapped(where, "image generation (DALL·E) has no equivalent", True))
        else:
            result.unmapped.append(Unmapped(where, f"unknown tool type {kind!r}", True))
    tools = [t for t in tools if t is not None]
    if tools:
        spec["tools"] = tools
    for index, item in enumerate(data.get("files") or []):
        file_name = item.get("name") if isinstance(item, dict) else None
        result.unmapped.append(
            Unmapped(
                f"files[{index}]",
                f"knowledge file {file_name or '?'} is not in the export: copy it under knowledge/{result.gpt_id}/ "
                "and list it in knowledge.files",
                True,
            )
        )
    _ignore(gizmo, {"display", "instructions", "model"}, "gizmo", result)
    _ignore(data, {"gizmo", "tools", "files"}, "", result)
    return result


def _gpt_action(meta: dict[str, Any], where: str, result: ImportResult, number: int) -> dict[str, Any] | None:
    raw = meta.get("raw_spec")
    if not isinstance(raw, str) or not raw.strip():
        result.unmapped.append(Unmapped(where, "an action without its OpenAPI document (raw_spec)", True))
        return None
    suffix = "json" if raw.lstrip().startswith("{") else "yaml"
    relative = f"actions/{result.gpt_id}-{number}.openapi.{suffix}"
    result.files[relative] = raw if raw.endswith("\n") else raw + "\n"
    action: dict[str, Any] = {"openapi": relative}
    auth = meta.get("auth") or {}
    auth_type = auth.get("type", "none") if isinstance(auth, dict) else "none"
    env = f"{result.gpt_id.upper().replace('-', '_')}_API_KEY"
    if auth_type == "service_http":
        scheme = (auth.get("authorization_type") or "bearer").lower()
        if scheme == "custom":
            action["auth"] = {"type": "api_key", "header": auth.get("custom_auth_header") or "X-API-Key", "token_env": env}
        elif scheme == "basic":
            action["auth"] = {"type": "basic", "username_env": f"{env}_USER", "password_env": f"{env}_PASSWORD"}
        else:
            action["auth"] = {"type": "bearer", "token_env": env}
        result.unmapped.append(
            Unmapped(f"{where}.metadata.auth", f"the secret is not exported: set it in the environment ({env}…)", False)
        )
    elif auth_type == "oauth":
        result.unmapped.append(
            Unmapped(f"{where}.metadata.auth", "user OAuth (sign in per user) has no equivalent; the action runs without auth", True)
        )
    privacy = meta.get("privacy_policy_url")
    if privacy:
        result.unmapped.append(Unmapped(f"{where}.metadata.privacy_policy_url", "not kept", False))
    return {"action": action}


def _from_assistant(data: dict[str, Any]) -> ImportResult:
    result = _begin("openai-assistant", _text(data.get("name")) or "Imported Assistant", data.get("instructions"), "")
    spec = result.spec
    _description(spec, data.get("description"), result, "description")
    model: dict[str, Any] = {"provider": "openai", "name": _text(data.get("model")) or "gpt-4o-mini", "api_key_env": OPENAI_KEY_ENV}
    for key in ("temperature", "top_p"):
        if isinstance(data.get(key), (int, float)):
            model[key] = data[key]
    spec["model"] = model
    tools: list[Any] = []
    for index, tool in enumerate(data.get("tools") or []):
        where = f"tools[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "code_interpreter":
            tools.append("python")
        elif kind == "file_search":
            result.unmapped.append(
                Unmapped(where, "file_search: the vector store's files are not in the export; add them as knowledge.files", True)
            )
        elif kind == "function":
            fn = (tool.get("function") or {}).get("name", "?")
            result.unmapped.append(
                Unmapped(where, f"function {fn}: write it as a typed Python function and list it as 'package.module:{fn}'", True)
            )
        else:
            result.unmapped.append(Unmapped(where, f"unknown tool type {kind!r}", True))
    if tools:
        spec["tools"] = tools
    response_format = data.get("response_format")
    if response_format not in (None, "auto") and response_format != {"type": "text"}:
        result.unmapped.append(Unmapped("response_format", "structured output formats are not supported", True))
    resources = data.get("tool_resources") or {}
    if any(ids for section in resources.values() if isinstance(section, dict) for ids in section.values()):
        result.unmapped.append(Unmapped("tool_resources", "uploaded files and vector stores are not in the export", True))
    known = {"name", "description", "instructions", "model", "temperature", "top_p", "tools", "response_format", "tool_resources"}
    _ignore(data, known, "", result)
    return result


# ----- Dify --------------------------------------------------------------------------------------

_DIFY_FEATURES = {
    "annotation_reply": "annotation replies (use curated_answers)",
    "sensitive_word_avoidance": "content moderation",
    "speech_to_text": "speech to text",
    "text_to_speech": "text to speech",
    "file_upload": "file uploads in chat",
    "more_like_this": "'more like this'",
    "suggested_questions_after_answer": "follow-up question suggestions",
}


def _from_dify(data: dict[str, Any]) -> ImportResult:
    app = data["app"]
    mode = app.get("mode")
    if mode == "workflow":
        raise InputError(
            "this Dify app is a workflow, not a chatbot: only chat, agent-chat, advanced-chat and completion apps "
            "can become a GPT"
        )
    config = data.get("model_config") or {}
    if mode == "advanced-chat":
        config = {}
    result = _begin("dify", _text(app.get("name")) or "Imported Dify app", config.get("pre_prompt"), "model_config", "pre_prompt")
    spec = result.spec
    _description(spec, app.get("description"), result, "app.description")
    icon = _text(app.get("icon"))
    if icon and app.get("icon_type", "emoji") == "emoji" and len(icon) <= 8:
        spec["avatar"] = icon
    if mode == "advanced-chat":
        result.unmapped.append(Unmapped("workflow", "a chatflow's graph of nodes has no equivalent; write the instructions by hand", True))
    elif mode == "completion":
        result.unmapped.append(Unmapped("app.mode", "a completion app becomes a chat GPT", False))
    if re.search(r"\{\{[^}]+\}\}", spec["instructions"]):
        result.unmapped.append(
            Unmapped("model_config.pre_prompt", "{{variables}} are not filled in: edit them in the instructions", True)
        )
    _starters(spec, config.get("suggested_questions"), result, "model_config.suggested_questions")
    if _text(config.get("opening_statement")):
        spec["widget"] = {"greeting": _text(config["opening_statement"])[:1000]}
    _dify_model(config.get("model") or {}, spec, result)
    _dify_tools(config.get("agent_mode") or {}, spec, result, agent=mode == "agent-chat")
    datasets = ((config.get("dataset_configs") or {}).get("datasets") or {}).get("datasets") or []
    if datasets:
        result.unmapped.append(
            Unmapped(
                "model_config.dataset_configs",
                f"{len(datasets)} knowledge dataset(s) are not in the export: copy their files under "
                f"knowledge/{result.gpt_id}/ and list them in knowledge.files",
                True,
            )
        )
    if config.get("user_input_form"):
        result.unmapped.append(Unmapped("model_config.user_input_form", "input forms have no equivalent", True))
    if config.get("external_data_tools"):
        result.unmapped.append(Unmapped("model_config.external_data_tools", "external data tools have no equivalent", True))
    for key, what in _DIFY_FEATURES.items():
        value = config.get(key)
        if isinstance(value, dict) and value.get("enabled"):
            result.unmapped.append(Unmapped(f"model_config.{key}", f"{what} has no equivalent", True))
    if (config.get("retriever_resource") or {}).get("enabled"):
        result.unmapped.append(Unmapped("model_config.retriever_resource", "not needed: answers always list their sources", False))
    handled = {
        "retriever_resource",
        "pre_prompt", "suggested_questions", "opening_statement", "model", "agent_mode", "dataset_configs",
        "user_input_form", "external_data_tools", *_DIFY_FEATURES,
    }
    _ignore(config, handled, "model_config", result)
    _ignore(app, {"name", "description", "icon", "icon_type", "mode"}, "app", result)
    _ignore(data, {"app", "model_config", "kind", "workflow"}, "", result)
    return result


def _dify_model(model: dict[str, Any], spec: dict[str, Any], result: ImportResult) -> None:
    if not model:
        return
    provider = str(model.get("provider", "")).split("/")[-1]
    if provider not in DIFY_OPENAI_COMPATIBLE:
        result.unmapped.append(
            Unmapped(
                "model_config.model",
                f"provider {model.get('provider')!r} is not OpenAI-compatible here: the GPT uses the embedded model; "
                "set model: to your endpoint",
                True,
            )
        )
        return
    out: dict[str, Any] = {"provider": "openai", "name": model.get("name") or "gpt-4o-mini"}
    base_url = DIFY_OPENAI_COMPATIBLE[provider]
    if base_url:
        out["base_url"] = base_url
    else:
        out["api_key_env"] = OPENAI_KEY_ENV
    params = model.get("completion_params") or {}
    for key in ("temperature", "top_p", "max_tokens", "stop"):
        if params.get(key) not in (None, []):
            out[key] = params[key]
    for key in params:
        if key not in ("temperature", "top_p", "max_tokens", "stop"):
            result.unmapped.append(Unmapped(f"model_config.model.completion_params.{key}", "not a spec setting", False))
    spec["model"] = out


def _dify_tools(agent_mode: dict[str, Any], spec: dict[str, Any], result: ImportResult, *, agent: bool) -> None:
    if not agent_mode.get("enabled") and not agent:
        return
    tools: list[str] = []
    for index, tool in enumerate(agent_mode.get("tools") or []):
        if not isinstance(tool, dict) or tool.get("enabled") is False:
            continue
        key = (str(tool.get("provider_id", "")).split("/")[-1], str(tool.get("tool_name", "")))
        builtin = DIFY_TOOLS.get(key)
        if builtin:
            tools.append(builtin)
        else:
            result.unmapped.append(
                Unmapped(f"model_config.agent_mode.tools[{index}]", f"Dify tool {key[0]}/{key[1]} has no equivalent", True)
            )
    if tools:
        spec["tools"] = list(dict.fromkeys(tools))
    if isinstance(agent_mode.get("max_iteration"), int):
        spec["max_tool_calls"] = max(1, min(50, agent_mode["max_iteration"]))


# ----- helpers -----------------------------------------------------------------------------------


def _read(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_IMPORT_BYTES:
            raise InputError(f"{path}: {size:,} bytes; an export may be at most {MAX_IMPORT_BYTES:,}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not an export file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; expected a JSON or YAML export") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise InputError(f"{path}: invalid JSON: {exc}") from None
    from .yamlsafe import parse_yaml

    try:
        return parse_yaml(text, display=str(path)).data
    except SpecError as exc:
        raise InputError(str(exc).replace("a spec must be", "an export must be")) from None


def _begin(kind: Format, name: Any, instructions: Any, prefix: str, key: str = "instructions") -> ImportResult:
    """A result holding the name, shelf and instructions every format has (a placeholder when blank)."""
    name = _text(name) or "Imported GPT"
    result = ImportResult(kind, _slug(name), {"name": name[:80], "category": "qa"})
    text = _text(instructions)
    result.spec["instructions"] = text or f"You are {name}."
    if not text:
        where = f"{prefix}.{key}" if prefix else key
        result.unmapped.append(Unmapped(where, "empty: a placeholder instruction was written", True))
    return result


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    return slug or "imported-gpt"


def _description(spec: dict[str, Any], value: Any, result: ImportResult, where: str) -> None:
    text = _text(value)
    if text:
        spec["description"] = text[:500]
        if len(text) > 500:
            result.unmapped.append(Unmapped(where, f"cut to 500 characters (was {len(text)})", False))


def _starters(spec: dict[str, Any], values: Any, result: ImportResult, where: str) -> None:
    starters = [s.strip()[:300] for s in values or [] if isinstance(s, str) and s.strip()]
    if len(starters) > MAX_STARTERS:
        result.unmapped.append(Unmapped(where, f"only the first {MAX_STARTERS} of {len(starters)} are kept", True))
    if starters:
        spec["conversation_starters"] = starters[:MAX_STARTERS]


def _ignore(data: dict[str, Any], handled: set[str], prefix: str, result: ImportResult) -> None:
    """Report every field not handled: metadata is ignored; an enabled feature dict counts as lost."""
    for key, value in data.items():
        if key in handled:
            continue
        where = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value.get("enabled") is True:
            result.unmapped.append(Unmapped(where, "a feature with no equivalent", True))
        else:
            result.unmapped.append(Unmapped(where, "metadata, or a setting that is off", False))


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
