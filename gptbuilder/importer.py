"""`gptbuilder import`: turn an OpenAI GPT or Assistant export, or a Dify chatbot DSL file, into a spec.

Every field of the source is accounted for: mapped onto the spec, `ignored` (metadata such as ids and
timestamps, or features switched off) or `lost` (a feature gptbuilder cannot reproduce from the file,
such as knowledge files the export does not contain). A spec with lost parts is written only on request.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
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
# Model names the OpenAI API serves; ChatGPT-only slugs (auto, gpt-5-thinking, gpt-4o-canmore…) do not match.
OPENAI_API_MODEL = re.compile(
    r"^(gpt-(3\.5|4|4o|4\.1|4\.5|5)(\.\d+)?(-(mini|nano|turbo|pro|preview|chat-latest))*|o[1-9](-(mini|pro|preview))*"
    r"|chatgpt-4o-latest)(-\d{4}-\d{2}-\d{2}|-\d{4})?$"
)
# ChatGPT capabilities a GPT record names as tool types, and why gptbuilder cannot offer them.
GPT_CAPABILITIES = {
    "browser": "web browsing (search) has no equivalent; fetch_url reads a given URL",
    "web": "web browsing (search) has no equivalent; fetch_url reads a given URL",
    "dalle": "image generation (DALL·E) has no equivalent",
    "image_gen": "image generation (image_gen) has no equivalent",
    "canvas": "canvas (ChatGPT's side-by-side document and code editor) has no equivalent; answers stay in the chat",
}


@dataclass(frozen=True)
class Unmapped:
    """A source field that did not become part of the spec, and why."""

    field: str
    reason: str
    lost: bool  # True: a feature the GPT will lack; False: metadata or a feature that was off

    def __post_init__(self) -> None:
        # both quote the file (keys, names): no control characters reach a terminal or the spec's header
        object.__setattr__(self, "field", _printable(self.field)[:200])
        object.__setattr__(self, "reason", _printable(self.reason)[:1000])

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
        # the source's name comes from the file system: a line break in it would end the comment and inject YAML
        header = [_printable(line) for line in header]
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
    return convert_data(_read(path), source=str(path))


def convert_data(data: Any, *, source: str = "the export") -> ImportResult:
    """Convert an already parsed export (see `convert`); ``source`` names it in errors."""
    data = unwrap(data)
    kind = detect(data)
    if kind is None:
        raise InputError(
            f"{source}: not an OpenAI GPT export (JSON with 'gizmo'), an OpenAI Assistant (JSON with "
            "\"object\": \"assistant\") or a Dify DSL file (YAML with 'app.mode' and 'model_config' or 'workflow')"
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
        raise InputError(f"{source}: the converted spec is not valid: {exc}") from None
    return result


def detect(data: Any) -> Format | None:
    """Which export a parsed file is, or None."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("gizmo"), dict):
        return "openai-gpt"
    if data.get("object") == "assistant":
        return "openai-assistant"
    app = data.get("app")
    # Dify's own templates (recommended apps) carry no kind/version: Dify fills them in on import
    template = "kind" not in data and ("model_config" in data or "workflow" in data)
    if isinstance(app, dict) and "mode" in app and (data.get("kind") == "app" or template):
        return "dify"
    return None


def unwrap(data: Any) -> Any:
    """The GPT record inside the wrappers GPT-store dumps put around it (a one-item list, ``data``, a page's ``gizmo``)."""
    for _ in range(3):
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        elif isinstance(data, dict) and "gizmo" not in data and isinstance(data.get("data"), dict) \
                and isinstance(data["data"].get("gizmo"), dict):
            data = data["data"]
        elif isinstance(data, dict) and isinstance(data.get("gizmo"), dict) and isinstance(data["gizmo"].get("gizmo"), dict):
            data = data["gizmo"]
        else:
            break
    return data


@dataclass
class Written:
    """The files an import wrote, and which of them replaced a file that was there before."""

    paths: list[Path]
    replaced: list[Path] = field(default_factory=list)


def write(result: ImportResult, out: Path, *, source: str, force: bool = False) -> Written:
    """Write the spec (and its action files) to ``out``; refuses lost parts or existing files unless forced."""
    from .loader import load_spec

    targets = [out, *(out.parent / relative for relative in result.files)]
    existing = [t for t in targets if t.exists() or t.is_symlink()]
    if not force and (result.lost or existing):
        reasons, remedies = [], []
        if result.lost:
            reasons.append(f"{len(result.lost)} part(s) of {source} cannot be mapped (listed above)")
            remedies.append("write the partial spec anyway")
        if existing:
            held = _held_by(out) if out in existing else ""
            reasons.append(f"{', '.join(map(str, existing))} already exist{'s' if len(existing) == 1 else ''}{held}")
            remedies.append("replace it (or -o FILE to write another file)")
        raise InputError(f"nothing written: {'; '.join(reasons)}; pass --force to {' and '.join(remedies)}")
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
    return Written(targets, existing)


def _held_by(spec: Path) -> str:
    """`` (the spec of 'Name')`` for an existing spec file whose name can be read, else nothing."""
    from .yamlsafe import read_yaml

    try:
        name = read_yaml(spec).data.get("name")
    except (SpecError, OSError):
        return ""
    return f" (the spec of {name!r})" if isinstance(name, str) and name.strip() else ""


# ----- OpenAI ------------------------------------------------------------------------------------


def _from_gpt(data: dict[str, Any]) -> ImportResult:
    gizmo = data["gizmo"]
    display = _dict(gizmo.get("display"))
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
    handled = {"display", "instructions", "model"}
    model = gizmo.get("model")
    if isinstance(model, str) and model:
        spec["model"] = {"provider": "openai", "name": model, "api_key_env": OPENAI_KEY_ENV}
    elif gizmo.get("default_model"):
        _gpt_default_model(gizmo["default_model"], spec, result)
        handled.add("default_model")
    tools: list[Any] = []
    for index, tool in enumerate(_list(data.get("tools"))):
        where = f"tools[{index}]"
        kind = _kind(tool)
        if kind == "python":
            tools.append("python")
        elif kind == "plugins_prototype":
            tools.append(_gpt_action(_dict(tool.get("metadata")), where, result, len(result.files) + 1))
        elif kind in ("retrieval", "file_search", "myfiles_browser"):
            _knowledge(result, where, f"{kind}: the GPT searched its knowledge files, which the export does not contain")
        elif kind in GPT_CAPABILITIES:
            result.unmapped.append(Unmapped(where, GPT_CAPABILITIES[kind], True))
        else:
            result.unmapped.append(Unmapped(where, f"unknown tool type {kind!r}", True))
    tools = [t for t in tools if t is not None]
    if tools:
        spec["tools"] = tools
    for index, item in enumerate(_list(data.get("files"))):
        file_name = _text(item.get("name")) if isinstance(item, dict) else ""
        _knowledge(result, f"files[{index}]", f"knowledge file {file_name or '(unnamed)'} is not in the export")
    _ignore(gizmo, handled, "gizmo", result)
    _ignore(data, {"gizmo", "tools", "files"}, "", result)
    return result


def _gpt_default_model(value: Any, spec: dict[str, Any], result: ImportResult) -> None:
    """The model a GPT ran on: an OpenAI API model becomes the spec's model; a ChatGPT-only one is reported."""
    name = _text(value)
    where = "gizmo.default_model"
    if name and OPENAI_API_MODEL.match(name):
        spec["model"] = {"provider": "openai", "name": name, "api_key_env": OPENAI_KEY_ENV}
        result.unmapped.append(
            Unmapped(where, f"the GPT ran on {name}: model is set to OpenAI's {name}; set {OPENAI_KEY_ENV}, or delete "
                     "model: to answer with the embedded model", False)
        )
    elif name:
        result.unmapped.append(
            Unmapped(where, f"the GPT ran on ChatGPT's {name!r}, which the OpenAI API does not serve: the embedded "
                     "model answers; set model: to an OpenAI-compatible endpoint and model to choose one", True)
        )


def _gpt_action(meta: dict[str, Any], where: str, result: ImportResult, number: int) -> dict[str, Any] | None:
    raw = meta.get("raw_spec")
    schema = meta.get("json_schema")
    if isinstance(raw, str) and raw.strip():
        suffix = "json" if raw.lstrip().startswith("{") else "yaml"
        text = raw if raw.endswith("\n") else raw + "\n"
    elif isinstance(schema, dict) and schema:  # GPT-store records since 2024 keep the document parsed, raw_spec null
        suffix, text = "json", json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    else:
        result.unmapped.append(Unmapped(where, "an action without its OpenAPI document (raw_spec or json_schema)", True))
        return None
    relative = f"actions/{result.gpt_id}-{number}.openapi.{suffix}"
    result.files[relative] = text
    action: dict[str, Any] = {"openapi": relative}
    auth = _dict(meta.get("auth"))
    auth_type = auth.get("type", "none")
    env = f"{result.gpt_id.upper().replace('-', '_')}_API_KEY"
    if auth_type == "service_http":
        scheme = str(auth.get("authorization_type") or "bearer").lower()
        if scheme == "custom":
            header = _text(auth.get("custom_auth_header")) or "X-API-Key"
            action["auth"] = {"type": "api_key", "header": header, "token_env": env}
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
        if isinstance(data.get(key), (int, float)) and not isinstance(data.get(key), bool):
            model[key] = data[key]
    spec["model"] = model
    tools: list[Any] = []
    for index, tool in enumerate(_list(data.get("tools"))):
        where = f"tools[{index}]"
        kind = _kind(tool)
        if kind == "code_interpreter":
            tools.append("python")
        elif kind in ("retrieval", "file_search"):
            _knowledge(result, where, f"{kind}: the assistant searched uploaded files, which the object does not contain")
        elif kind == "function":
            fn = _dict(tool.get("function")).get("name", "?")
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
    file_ids = [str(f) for f in _list(data.get("file_ids")) if f]
    if file_ids:  # Assistants API v1
        result.unmapped.append(
            Unmapped("file_ids", f"{len(file_ids)} attached file(s) ({', '.join(file_ids[:5])}) are not in the object: "
                     f"download them from the OpenAI Files API into knowledge/{result.gpt_id}/ beside the spec", True)
        )
    for section, value in _dict(data.get("tool_resources")).items():
        for key, ids in _dict(value).items():
            listed = [str(i) for i in _list(ids) if i]
            if listed:
                result.unmapped.append(
                    Unmapped(f"tool_resources.{section}.{key}", f"{', '.join(listed[:5])}: their files are not in the "
                             f"object: download them from OpenAI into knowledge/{result.gpt_id}/ beside the spec", True)
                )
    known = {"name", "description", "instructions", "model", "temperature", "top_p", "tools", "response_format",
             "tool_resources", "file_ids"}
    _ignore(data, known, "", result)
    return result


def _knowledge(result: ImportResult, where: str, what: str) -> None:
    """Point the spec's knowledge at knowledge/<id>/ and report the files the user must put there."""
    folder = f"knowledge/{result.gpt_id}/"
    result.spec.setdefault("knowledge", {"files": [f"{folder}*"]})
    result.unmapped.append(Unmapped(where, f"{what}: copy the files into {folder} beside the spec (knowledge.files points there)", True))


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
    config = _dict(data.get("model_config"))
    if mode == "advanced-chat":
        config = {}
    result = _begin("dify", _text(app.get("name")) or "Imported Dify app", config.get("pre_prompt"), "model_config", "pre_prompt")
    spec = result.spec
    _description(spec, app.get("description"), result, "app.description")
    _dify_icon(app, spec, result)
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
    _dify_model(_dict(config.get("model")), spec, result)
    _dify_tools(_dict(config.get("agent_mode")), spec, result, agent=mode == "agent-chat")
    datasets = _list(_dict(_dict(config.get("dataset_configs")).get("datasets")).get("datasets"))
    if datasets:
        _knowledge(result, "model_config.dataset_configs", f"{len(datasets)} knowledge dataset(s) are not in the export")
    if config.get("user_input_form"):
        result.unmapped.append(Unmapped("model_config.user_input_form", "input forms have no equivalent", True))
    if config.get("external_data_tools"):
        result.unmapped.append(Unmapped("model_config.external_data_tools", "external data tools have no equivalent", True))
    for key, what in _DIFY_FEATURES.items():
        value = config.get(key)
        if isinstance(value, dict) and value.get("enabled"):
            result.unmapped.append(Unmapped(f"model_config.{key}", f"{what} has no equivalent", True))
    if _dict(config.get("retriever_resource")).get("enabled"):
        result.unmapped.append(Unmapped("model_config.retriever_resource", "not needed: answers always list their sources", False))
    handled = {
        "retriever_resource",
        "pre_prompt", "suggested_questions", "opening_statement", "model", "agent_mode", "dataset_configs",
        "user_input_form", "external_data_tools", *_DIFY_FEATURES,
    }
    _ignore(config, handled, "model_config", result)
    _ignore(app, {"name", "description", "icon", "icon_type", "icon_url", "mode"}, "app", result)
    _ignore(data, {"app", "model_config", "kind", "workflow"}, "", result)
    return result


def _dify_icon(app: dict[str, Any], spec: dict[str, Any], result: ImportResult) -> None:
    """The app's emoji as the avatar: Dify stores either the emoji or its shortname (``scream``)."""
    icon = _text(app.get("icon"))
    if not icon:
        return
    if app.get("icon_type", "emoji") not in (None, "emoji"):
        result.unmapped.append(Unmapped("app.icon", "an uploaded picture, not in the export: set avatar to an emoji or a file", False))
    elif not icon.isascii() and len(icon) <= 8:
        spec["avatar"] = icon
    elif (emoji := _emoji(icon)) is not None:
        spec["avatar"] = emoji
    else:
        result.unmapped.append(Unmapped("app.icon", f"{icon[:40]!r} is not a known emoji name: set avatar to an emoji", False))


def _emoji(shortname: str) -> str | None:
    """The emoji a Dify (emoji-mart) shortname such as ``scream`` or ``robot_face`` stands for, or None."""
    if not re.fullmatch(r"[a-z0-9_+\-]{1,60}", shortname):
        return None
    import emoji  # lazy: only Dify files with a shortname icon need it

    for name in (shortname, shortname.replace("-", "_")):
        for language in ("alias", "en"):
            found = emoji.emojize(f":{name}:", language=language)
            if found != f":{name}:" and emoji.is_emoji(found):
                return found
    return None


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
    out: dict[str, Any] = {"provider": "openai", "name": _text(model.get("name")) or "gpt-4o-mini"}
    base_url = DIFY_OPENAI_COMPATIBLE[provider]
    if base_url:
        out["base_url"] = base_url
    else:
        out["api_key_env"] = OPENAI_KEY_ENV
    params = _dict(model.get("completion_params"))
    for key in ("temperature", "top_p", "max_tokens", "stop"):
        value = params.get(key)
        if value in (None, []):
            continue
        if key == "stop":
            fits = isinstance(value, list) and all(isinstance(item, str) for item in value)
        else:
            fits = isinstance(value, int if key == "max_tokens" else (int, float)) and not isinstance(value, bool)
        if fits:
            out[key] = value
        else:
            result.unmapped.append(Unmapped(f"model_config.model.completion_params.{key}", f"{value!r:.40} is not a {key}", False))
    for key in params:
        if key not in ("temperature", "top_p", "max_tokens", "stop"):
            result.unmapped.append(Unmapped(f"model_config.model.completion_params.{key}", "not a spec setting", False))
    spec["model"] = out


def _dify_tools(agent_mode: dict[str, Any], spec: dict[str, Any], result: ImportResult, *, agent: bool) -> None:
    if not agent_mode.get("enabled") and not agent:
        return
    tools: list[str] = []
    for index, tool in enumerate(_list(agent_mode.get("tools"))):
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
    if isinstance(agent_mode.get("max_iteration"), int) and not isinstance(agent_mode.get("max_iteration"), bool):
        spec["max_tool_calls"] = max(1, min(50, agent_mode["max_iteration"]))


# ----- helpers -----------------------------------------------------------------------------------


def _read(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_IMPORT_BYTES:
            raise InputError(f"{path}: {size:,} bytes; an export may be at most {MAX_IMPORT_BYTES:,}")
        with path.open("rb") as handle:  # a file that grows after stat() is still read only up to the limit
            raw = handle.read(MAX_IMPORT_BYTES + 1)
        if len(raw) > MAX_IMPORT_BYTES:
            raise InputError(f"{path}: over {MAX_IMPORT_BYTES:,} bytes; an export may be at most {MAX_IMPORT_BYTES:,}")
        text = raw.decode("utf-8")
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
        except RecursionError:
            raise InputError(f"{path}: invalid JSON: values are nested too deeply") from None
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


def _printable(text: str) -> str:
    """``text`` with control characters (line breaks, escape sequences) made spaces."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", text)


def _dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping, else an empty one: a hostile file may put anything anywhere."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _kind(tool: Any) -> str | None:
    """A tools[] entry's ``type``, when it is text."""
    kind = tool.get("type") if isinstance(tool, dict) else None
    return kind if isinstance(kind, str) else None


def _slug(name: str) -> str:
    """An id from a name in any script: CJK, kana and hangul become their romanization, one word a character."""
    from anyascii import anyascii  # lazy: a table per Unicode block, loaded on demand

    words = []
    for char in name:
        if char.isascii():
            words.append(char)
        elif unicodedata.east_asian_width(char) in ("W", "F"):
            words.append(f" {anyascii(char)} ")
        else:
            words.append(anyascii(char))
    slug = re.sub(r"[^a-z0-9]+", "-", "".join(words).lower()).strip("-")[:64].strip("-")
    if slug:
        return slug
    # nothing transliterates (symbols only): a stable suffix keeps distinct names apart
    return "imported-gpt-" + hashlib.sha256(name.encode()).hexdigest()[:8] if name.strip() else "imported-gpt"


def _description(spec: dict[str, Any], value: Any, result: ImportResult, where: str) -> None:
    text = _text(value)
    if text:
        spec["description"] = text[:500]
        if len(text) > 500:
            result.unmapped.append(Unmapped(where, f"cut to 500 characters (was {len(text)})", False))


def _starters(spec: dict[str, Any], values: Any, result: ImportResult, where: str) -> None:
    starters = [s.strip()[:300] for s in _list(values) if isinstance(s, str) and s.strip()]
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
