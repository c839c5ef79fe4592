"""An action's OpenAPI document: read safely, validated, $refs resolved, operations described as JSON-schema tools.

An operation also knows how its arguments go into a request (path, query and header serialisation is defined by
the document); calling it, with auth, is `actions`' job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard, get_args
from urllib.parse import quote, unquote, urlsplit

from langchain_core.tools import ToolException

from ..errors import SpecError, SpecProblem, did_you_mean
from ..paths import PathEscapeError, safe_join
from ..spec import ActionConfig
from ..yamlsafe import parse_yaml
from .compile import ToolProblem
from .network import address_problem

MAX_DOC_BYTES = 2_000_000
MAX_REF_DEPTH = 32
MAX_SCHEMA_NODES = 10_000  # per operation, after inlining $refs
MAX_DESCRIPTION_CHARS = 1024
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# StructuredTool passes these to its own function, so an API argument by that name would be lost
RESERVED_ARGS = frozenset({"config", "run_manager", "callbacks"})
IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})  # OpenAPI: described elsewhere
OPERATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NOT_A_MAPPING = "an OpenAPI document must be a mapping (openapi: 3.1.0, info: ..., paths: ...)"

_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_ONE = frozenset({"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
                         "unevaluatedItems", "unevaluatedProperties", "additionalItems"})
_SCHEMA_DROPPED = frozenset({"xml", "externalDocs", "discriminator", "nullable", "example"})


class _Problem(Exception):
    """One problem at one place of the OpenAPI document."""

    def __init__(self, where: str, message: str):
        super().__init__(message)
        self.where = where
        self.message = message


ParamLocation = Literal["path", "query", "header"]  # where a request carries a parameter (cookies are not sent)


def _is_param_location(location: str) -> TypeGuard[ParamLocation]:
    return location in get_args(ParamLocation)


@dataclass(frozen=True)
class ActionParameter:
    """A path, query or header parameter, and the argument name the model fills it with."""

    arg: str
    name: str
    location: ParamLocation
    required: bool
    schema: dict[str, Any]
    style: str | None = None
    explode: bool | None = None


@dataclass(frozen=True)
class ActionOperation:
    """One operation of an action's OpenAPI document, ready to become a tool."""

    operation_id: str
    method: str
    path: str
    base_url: str
    description: str
    parameters: tuple[ActionParameter, ...]
    body: Literal["none", "flat", "whole"]
    body_args: tuple[str, ...]
    body_required: bool
    args_schema: dict[str, Any]
    requires_confirmation: bool
    source: str

    @property
    def host(self) -> str:
        """The server's host name: the only host this operation may contact."""
        return (urlsplit(self.base_url).hostname or "").lower()

    def request_parts(self, args: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]], dict[str, str], Any]:
        """URL, query pairs, headers and JSON body for one call; path values are percent-encoded whole."""
        path = self.path
        query: list[tuple[str, str]] = []
        headers: dict[str, str] = {}
        for param in self.parameters:
            if args.get(param.arg) is None:
                continue
            value = args[param.arg]
            if param.location == "path":
                path = path.replace("{" + param.name + "}", _path_segment(value))
            elif param.location == "query":
                query.extend(_query_pairs(param, value))
            else:
                text = _plain(value)
                if "\r" in text or "\n" in text:
                    raise ToolException(f"{param.arg}: a header value may not contain line breaks")
                headers[param.name] = text
        body: Any = None
        if self.body == "whole":
            body = args.get("body")
        elif self.body == "flat":
            provided = {name: args[name] for name in self.body_args if name in args}
            body = provided if provided or self.body_required else None
        return self.base_url.rstrip("/") + path, query, headers, body


def load_actions(config: ActionConfig, *, spec_folder: Path, allow_private: bool) -> list[ActionOperation]:
    """Parse and validate the action's OpenAPI document; raise SpecError listing every problem."""
    operations, problems = read_actions(config, spec_folder=spec_folder, allow_private=allow_private)
    if problems:
        raise SpecError([_spec_problem(problem, config.openapi) for problem in problems])
    return operations


def read_actions(config: ActionConfig, *, spec_folder: Path,
                 allow_private: bool) -> tuple[list[ActionOperation], list[ToolProblem]]:
    """The action's operations and every problem: at a field of ``config`` (`confirm[0]`) or inside the document."""
    shown = config.openapi
    try:
        data, lines = _read_document(safe_join(spec_folder, config.openapi), shown)
    except PathEscapeError as exc:
        return [], [ToolProblem("openapi", str(exc))]
    except _Unreadable as exc:
        return [], [exc.problem]
    problems: list[ToolProblem] = []

    def add(problem: ToolProblem) -> None:
        if problem not in problems:  # e.g. one bad server URL shared by every operation
            problems.append(problem)

    def report(where: str, message: str) -> None:
        loc = tuple(int(p) if p.isdigit() else p for p in where.split(".")) if where else ()
        line = next((lines[loc[:end]] for end in range(len(loc), 0, -1) if loc[:end] in lines), None)
        add(ToolProblem(where, message, shown, line))

    for problem in _structure_problems(data):
        report(problem.where, problem.message)
    if problems:
        return [], problems
    resolver = _Resolver(data)
    found = list(_operations(data, resolver, report))
    named = {op_id: found_op for op_id, found_op in found if op_id}
    if not found:
        report("paths", "the document defines no operations (paths with get, post, ...); an action needs at least one")
    elif config.operations is None:
        for op_id, (method, op_path, *_rest) in found:
            if op_id is None:
                report(f"paths.{op_path}.{method}", f"{method.upper()} {op_path} has no operationId; add one "
                       "(it becomes the tool's name) or pick operations with 'operations:'")
    selected = list(named) if config.operations is None else []
    for index, name in enumerate(config.operations or []):
        if name in named:
            selected.append(name)
        else:
            add(ToolProblem(f"operations[{index}]", f"no operation {name!r} in the document{did_you_mean(name, named)}"))
    if config.operations == []:
        add(ToolProblem("operations", "lists no operations; leave it out to use every operation"))
    for index, name in enumerate(config.confirm or []):
        if name not in named:
            add(ToolProblem(f"confirm[{index}]", f"no operation {name!r} in the document{did_you_mean(name, named)}"))
    operations: list[ActionOperation] = []
    for op_id in dict.fromkeys(selected):
        method, op_path, item, op = named[op_id]
        confirm = method != "get" if config.confirm is None else op_id in config.confirm
        try:
            operations.append(_build_operation(op_id, method, op_path, item, op, data, resolver, shown, confirm,
                                               allow_private))
        except _Problem as problem:
            report(problem.where, problem.message)
        except RecursionError:
            report(f"paths.{op_path}.{method}", "the schemas nest too deeply; simplify them")
    return operations, problems


def _spec_problem(problem: ToolProblem, shown: str) -> SpecProblem:
    """A problem as compiling reports it: in the document's name, config fields without their list index."""
    if problem.file is not None:
        return SpecProblem(problem.file, problem.field, problem.message, problem.line)
    field = "" if problem.field == "openapi" else re.sub(r"\[\d+\]$", "", problem.field)
    return SpecProblem(shown, field, problem.message)


# -- reading and checking the document ------------------------------------------------------------------


class _Unreadable(Exception):
    """The document cannot be read or parsed: one problem, at the spec's `openapi` or inside the file."""

    def __init__(self, problem: ToolProblem):
        super().__init__(problem.message)
        self.problem = problem


def _read_document(path: Path, shown: str) -> tuple[dict[str, Any], dict[tuple, int]]:
    def fail(message: str, line: int | None = None) -> _Unreadable:
        return _Unreadable(ToolProblem("", message, shown, line))

    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_DOC_BYTES + 1)
    except FileNotFoundError:
        raise _Unreadable(ToolProblem("openapi", f"OpenAPI file not found: {shown} (the path is relative to the GPT's "
                                                 "spec file)")) from None
    except IsADirectoryError:
        raise _Unreadable(ToolProblem("openapi", "is a folder, not an OpenAPI file")) from None
    except OSError as exc:
        raise _Unreadable(ToolProblem("openapi", f"cannot read the OpenAPI file: {exc.strerror or exc}")) from None
    if len(raw) > MAX_DOC_BYTES:
        raise fail(f"the OpenAPI file is over {MAX_DOC_BYTES:,} bytes; keep only the operations the GPT needs")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise fail("the OpenAPI file is empty")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise fail(f"invalid JSON: {exc.msg}", exc.lineno) from None
        except (ValueError, RecursionError) as exc:
            raise fail(f"invalid JSON: {exc if isinstance(exc, ValueError) else 'nested too deeply'}") from None
        lines: dict[tuple, int] = {}
    else:
        try:
            doc = parse_yaml(text, display=shown)
        except SpecError as exc:
            first = exc.problems[0]
            if first.message.startswith("a spec must be a mapping"):
                raise fail(NOT_A_MAPPING) from None
            raise fail(first.message, first.line) from None
        data, lines = doc.data, doc.lines
    if not isinstance(data, dict):
        raise fail(NOT_A_MAPPING)
    return data, lines


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _structure_problems(data: dict[str, Any]) -> list[_Problem]:
    """Version, openapi-pydantic validation and external $refs."""
    from openapi_pydantic import parse_obj
    from pydantic import ValidationError

    if "swagger" in data:
        return [_Problem("swagger", "Swagger 2.0 is not supported; convert the document to OpenAPI 3 "
                                    "(for example with swagger2openapi)")]
    version = str(data.get("openapi", ""))
    match = re.fullmatch(r"3\.([01])\.\d+", version)
    if not match:
        shown = f"{version!r} is" if version else "is missing; it"
        return [_Problem("openapi", f"{shown} not a supported version; gptbuilder reads OpenAPI 3.0.x and 3.1.x")]
    problems: list[_Problem] = []
    try:
        parse_obj({**data, "openapi": "3.0.4" if match.group(1) == "0" else "3.1.1"})
    except RecursionError:
        return [_Problem("", "the document nests too deeply")]
    except ValidationError as exc:
        seen: set[str] = set()
        errors = exc.errors()
        for error in errors:
            loc = [str(p) for p in error["loc"][1:] if not _is_model_tag(p)]
            where = ".".join(loc)
            alternative = [e for e in errors if e is not error and "$ref" not in e["loc"]]
            if error["loc"][-1] == "$ref" and alternative:
                continue  # "a Reference needs $ref" only restates that the real object is wrong
            if where not in seen and len(seen) < 10:
                seen.add(where)
                problems.append(_Problem(where, f"invalid OpenAPI: {error['msg']}"))
    problems.extend(_external_refs(data))
    return problems


def _is_model_tag(part: Any) -> bool:
    import openapi_pydantic

    return isinstance(part, str) and ("[" in part or isinstance(getattr(openapi_pydantic, part, None), type))


def _external_refs(data: Any) -> Iterator[_Problem]:
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                yield _Problem(".".join(where), f"$ref {ref!r} points outside this document; only '#/...' references "
                                                "are followed (paste the referenced part into components)")
            stack.extend((value, (*where, str(key))) for key, value in node.items() if key not in ("example",))
        elif isinstance(node, list):
            stack.extend((value, (*where, str(index))) for index, value in enumerate(node))


class _Resolver:
    """Follows internal `#/...` references: plain objects one level, schemas inlined completely."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.nodes = 0

    def target(self, ref: str, where: str) -> Any:
        if not ref.startswith("#/"):
            raise _Problem(where, f"$ref {ref!r} is not a '#/...' reference into this document")
        node: Any = self.data
        for raw in ref[2:].split("/"):
            part = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise _Problem(where, f"$ref {ref!r} points to nothing in the document")
        return node

    def deref(self, node: Any, where: str) -> Any:
        """A parameter, request body or path item, with its $ref chain followed."""
        seen: list[str] = []
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen or len(seen) >= MAX_REF_DEPTH:
                raise _Problem(where, f"$ref {ref!r} leads round in a circle")
            seen.append(ref)
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            target = self.target(ref, where)
            node = {**target, **siblings} if isinstance(target, dict) else target
        return node

    def schema(self, node: Any, where: str, trail: tuple[str, ...] = ()) -> Any:
        """A JSON Schema with every $ref inlined (a recursive one is cut) and OpenAPI 3.0 quirks translated."""
        self.nodes += 1
        if self.nodes > MAX_SCHEMA_NODES:
            raise _Problem(where, f"the schemas expand to more than {MAX_SCHEMA_NODES:,} parts through $ref; "
                                  "simplify them")
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            return {}
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in trail:
                return {"description": f"(recursive: same shape as {ref.rsplit('/', 1)[-1]})"}
            if len(trail) >= MAX_REF_DEPTH:
                raise _Problem(where, f"$refs nest more than {MAX_REF_DEPTH} deep at {ref!r}")
            resolved = self.schema(self.target(ref, where), where, (*trail, ref))
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            if siblings and isinstance(resolved, dict):
                resolved = {**resolved, **self.schema(siblings, where, trail)}
            return resolved
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: self.schema(sub, where, trail) for name, sub in value.items()}
            elif (key in _SCHEMA_LISTS and isinstance(value, list)) or (key == "items" and isinstance(value, list)):
                out[key] = [self.schema(sub, where, trail) for sub in value]
            elif key in _SCHEMA_ONE:
                out[key] = self.schema(value, where, trail)
            elif key not in _SCHEMA_DROPPED:
                out[key] = value
        if "example" in node and "examples" not in out:
            out["examples"] = [node["example"]]
        if node.get("nullable") is True:  # OpenAPI 3.0
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            # OpenAPI 3.0: a flag on minimum/maximum (popped either way)
            if isinstance(out.get(exclusive), bool) and out.pop(exclusive) and bound in out:
                out[exclusive] = out.pop(bound)
        return out


def _operations(data: dict[str, Any], resolver: _Resolver,
                report: Callable[[str, str], None]) -> Iterator[tuple[str | None, tuple]]:
    """(operationId, (method, path, path item, operation)) for each operation; None: it has no id."""
    seen: dict[str, str] = {}
    for op_path, raw_item in (data.get("paths") or {}).items():
        try:
            item = resolver.deref(raw_item, f"paths.{op_path}")
        except _Problem as problem:
            report(problem.where, problem.message)
            continue
        for method in METHODS:
            op = item.get(method) if isinstance(item, dict) else None
            if not isinstance(op, dict):
                continue
            op_id = op.get("operationId")
            where = f"paths.{op_path}.{method}.operationId"
            if op_id is not None and not (isinstance(op_id, str) and OPERATION_ID.match(op_id)):
                report(where, f"{op_id!r} cannot be a tool name: use at most 64 letters, digits, '_' and '-'")
                op_id = ""  # reported: neither a tool nor "missing"
            elif op_id in seen:
                report(where, f"operationId {op_id!r} is also used by {seen[op_id]}; each must be unique")
                op_id = ""
            elif op_id:
                seen[op_id] = f"{method.upper()} {op_path}"
            yield op_id, (method, op_path, item, op)


def _build_operation(op_id: str, method: str, op_path: str, item: dict, op: dict, data: dict,
                     resolver: _Resolver, shown: str, confirm: bool, allow_private: bool) -> ActionOperation:
    where = f"paths.{op_path}.{method}"
    resolver.nodes = 0
    base_url = _base_url(op.get("servers") or item.get("servers") or data.get("servers") or [], allow_private)
    by_key: dict[tuple[str, str], dict] = {}
    for index, raw in enumerate([*(item.get("parameters") or []), *(op.get("parameters") or [])]):
        param = resolver.deref(raw, f"{where}.parameters.{index}")
        if not isinstance(param, dict) or not isinstance(param.get("name"), str) or "in" not in param:
            raise _Problem(f"{where}.parameters.{index}", "is not a parameter (it needs 'name' and 'in')")
        by_key[(param["name"], param["in"])] = param
    properties: dict[str, Any] = {}
    required: list[str] = []
    params: list[ActionParameter] = []

    def add_arg(name: str, location: str, schema: dict, is_required: bool) -> str:
        arg = name
        if arg in properties or arg in RESERVED_ARGS:
            arg = f"{location}_{name}"
        if arg in properties or arg in RESERVED_ARGS:
            raise _Problem(where, f"{location} argument {name!r} clashes with another argument of {op_id}")
        properties[arg] = schema
        if is_required:
            required.append(arg)
        return arg

    for (name, location), param in by_key.items():
        if location == "cookie" or (location == "header" and name.lower() in IGNORED_HEADERS):
            if location == "cookie" and param.get("required"):
                raise _Problem(where, f"cookie parameter {name!r} is not supported")
            continue
        if not _is_param_location(location):  # openapi-pydantic already refused any other place
            raise _Problem(where, f"parameter {name!r} is in {location!r}; use path, query or header")
        schema = param.get("schema")
        if schema is None:
            media: Any = next(iter((param.get("content") or {}).values()), {})
            schema = media.get("schema") if isinstance(media, dict) else None
        schema = resolver.schema(schema if schema is not None else {"type": "string"}, where)
        if param.get("description") and isinstance(schema, dict) and "description" not in schema:
            schema = {**schema, "description": param["description"]}
        is_required = location == "path" or bool(param.get("required"))
        arg = add_arg(name, location, schema, is_required)
        params.append(ActionParameter(arg, name, location, is_required, schema, param.get("style"),
                                      param.get("explode")))
    for name in re.findall(r"{([^}]+)}", op_path):
        if not any(p.location == "path" and p.name == name for p in params):
            raise _Problem(where, f"path parameter {{{name}}} is not described under 'parameters'")
    body_kind, body_args, body_required = _request_body(op, where, resolver, properties, required, add_arg)
    description = "\n\n".join(part.strip() for part in (op.get("summary"), op.get("description")) if part)
    description = description or f"{method.upper()} {op_path}"
    if len(description) > MAX_DESCRIPTION_CHARS:
        description = description[: MAX_DESCRIPTION_CHARS - 1] + "…"
    args_schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return ActionOperation(op_id, method, op_path, base_url, description, tuple(params), body_kind, body_args,
                           body_required, args_schema, confirm, shown)


def _request_body(op: dict, where: str, resolver: _Resolver, properties: dict, required: list[str],
                  add_arg: Callable[[str, str, dict, bool], str]) -> tuple[Any, tuple[str, ...], bool]:
    if not op.get("requestBody"):
        return "none", (), False
    body = resolver.deref(op["requestBody"], f"{where}.requestBody")
    if not isinstance(body, dict):
        raise _Problem(f"{where}.requestBody", "is not a request body object")
    content = body.get("content") or {}
    media_type = next((m for m in content if re.fullmatch(r"application/([\w.+-]+\+)?json(;.*)?", m.lower())), None)
    if media_type is None:
        if body.get("required"):
            kinds = ", ".join(content) or "no content type"
            raise _Problem(f"{where}.requestBody", f"the request body is {kinds}; only JSON bodies are supported "
                           "(leave this operation out with 'operations:')")
        return "none", (), False
    schema = resolver.schema((content[media_type] or {}).get("schema") or {}, where)
    body_required = bool(body.get("required"))
    fields = schema.get("properties") if isinstance(schema, dict) else None
    writable = {name: sub for name, sub in (fields or {}).items()
                if not (isinstance(sub, dict) and sub.get("readOnly"))}  # read-only: the server sets it
    if writable and not (set(writable) & (set(properties) | RESERVED_ARGS)):
        needed = set(schema.get("required") or []) if body_required else set()
        args = tuple(add_arg(name, "body", sub, name in needed) for name, sub in writable.items())
        return "flat", args, body_required
    if "body" in properties:
        raise _Problem(where, "a parameter named 'body' clashes with the request body argument")
    if body.get("description") and isinstance(schema, dict) and "description" not in schema:
        schema = {**schema, "description": body["description"]}
    add_arg("body", "body", schema, body_required)
    return "whole", ("body",), body_required


def _base_url(servers: list, allow_private: bool) -> str:
    if not servers or not isinstance(servers[0], dict):
        raise _Problem("servers", "the document names no server; add servers: [{url: https://api.example.com}]")
    server = servers[0]
    url = str(server.get("url", ""))
    for name in re.findall(r"{([^}]+)}", url):
        default = ((server.get("variables") or {}).get(name) or {}).get("default")
        if default is None:
            raise _Problem("servers.0.url", f"server variable {{{name}}} has no default")
        url = url.replace("{" + name + "}", str(default))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Problem("servers.0.url", f"{url!r} is not an absolute http(s) URL; write the full URL, e.g. "
                                        "https://api.example.com/v1 (a relative URL has nothing to resolve against)")
    if not allow_private:
        problem = _literal_host_problem(parts.hostname)
        if problem:
            raise _Problem("servers.0.url",
                           f"{url} is {problem}; the GPT must set allow_private_network: true to call it")
    return url


def _literal_host_problem(host: str) -> str | None:
    import ipaddress

    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return "a loopback address"
    try:
        return address_problem(ipaddress.ip_address(host), allow_private=False)
    except ValueError:
        return None  # a name: resolved and checked at call time


# -- serialising arguments ---------------------------------------------------------------------------------


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{_plain(k)},{_plain(v)}" for k, v in value.items())
    return str(value)


def _path_segment(value: Any) -> str:
    segment = quote(_plain(value), safe="")
    # quote leaves dots alone, and a lone '.' or '..' segment would be resolved away by URL normalisation
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def _query_pairs(param: ActionParameter, value: Any) -> list[tuple[str, str]]:
    style = param.style or "form"
    explode = param.explode if param.explode is not None else style == "form"
    if isinstance(value, dict):
        if style == "deepObject":
            return [(f"{param.name}[{k}]", _plain(v)) for k, v in value.items()]
        if explode:
            return [(str(k), _plain(v)) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        if explode:
            return [(param.name, _plain(v)) for v in value]
        separator = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(style, ",")
        return [(param.name, separator.join(_plain(v) for v in value))]
    return [(param.name, _plain(value))]
