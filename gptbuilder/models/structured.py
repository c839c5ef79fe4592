"""Structured output: OpenAI's `response_format`, checked once, and the JSON schema an answer is held to.

`check_schema` is what every schema must pass wherever it comes from (size, depth, local references only,
valid JSON Schema); each local backend then compiles it to a grammar with bounds of its own (see gbnf.py
for llama.cpp, transformers.py for xgrammar) and says what it cannot compile as an InputError.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from ..errors import InputError

MAX_SCHEMA_BYTES = 64 * 1024  # of compact JSON: far above a real answer's schema, far below what stalls a compiler
MAX_SCHEMA_DEPTH = 32  # nested objects and arrays in the schema document itself
ANY_OBJECT: dict[str, Any] = {"type": "object"}  # what `json_object` holds an answer to
GRAMMAR_CACHE_SIZE = 64  # compiled grammars kept per model: client schemas must not grow memory without end

T = TypeVar("T")


def answer_schema(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema an answer must follow: json_schema's own, any object for json_object, None for text (or none)."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return dict(ANY_OBJECT)
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise InputError("response_format json_schema needs json_schema.schema, a JSON Schema object")
        return schema
    raise InputError(f"response_format type {kind!r} is not one of text, json_object, json_schema")


def check_schema(schema: Any) -> None:
    """Raise InputError unless ``schema`` is a JSON Schema object small and plain enough to compile to a grammar.

    Limits: MAX_SCHEMA_BYTES of JSON, MAX_SCHEMA_DEPTH levels of nesting, `$ref`s inside the document
    only (a grammar compiler must never fetch a URL a client names), and the JSON Schema metaschema.
    """
    if not isinstance(schema, dict):
        raise InputError(f"the schema must be a JSON object, not {type(schema).__name__}")
    size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_SCHEMA_BYTES:
        raise InputError(f"the schema is too large to compile: {size} bytes of JSON, at most {MAX_SCHEMA_BYTES}")
    depth = _depth(schema)
    if depth > MAX_SCHEMA_DEPTH:
        raise InputError(f"the schema is too deep to compile: {depth} levels of nesting, at most {MAX_SCHEMA_DEPTH}")
    for path, value in walk(schema):
        for key in ("$ref", "$dynamicRef", "$recursiveRef"):
            ref = value.get(key)
            if isinstance(ref, str) and not ref.startswith("#"):
                where = path or "the schema"
                raise InputError(f"{where}: {key} {ref[:80]!r} is not inside the schema; only local references (#/...) are followed")
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import Draft202012Validator, validator_for

    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        where = exc.json_path.removeprefix("$").lstrip(".")
        raise InputError(f"not a valid JSON Schema: {where + ': ' if where else ''}{exc.message[:300]}") from None


def walk(schema: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object in a schema document with its dotted path, without recursion (the depth is the caller's to bound)."""
    stack: list[tuple[str, Any]] = [("", schema)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            yield path, value
            stack.extend((f"{path}.{key}".lstrip("."), item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}.{index}".lstrip("."), item) for index, item in enumerate(value))


def _depth(document: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return deepest


def schema_key(schema: Mapping[str, Any]) -> str:
    """The text a compiled grammar is cached by: the schema's canonical JSON."""
    return json.dumps(schema, sort_keys=True)


class GrammarCache(Generic[T]):
    """Compiled grammars by key, the least recently used dropped past `size`; compiles serialised by one lock."""

    def __init__(self, size: int = GRAMMAR_CACHE_SIZE):
        self.size = size
        self._items: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The grammar for ``key``, built (under the lock) when it is not kept; a failed build is not kept."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            item = build()
            self._items[key] = item
            if len(self._items) > self.size:
                self._items.popitem(last=False)
            return item

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
