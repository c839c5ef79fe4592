"""Turn pydantic's validation errors into `file: dotted.field: message` lines with suggestions."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from pydantic import BaseModel, Tag, ValidationError

from .errors import SpecProblem, did_you_mean
from .spec import GPTSpec
from .yamlsafe import YamlDocument


def describe_validation_error(
    exc: ValidationError, doc: YamlDocument, file: str, *, root: type[BaseModel] | None = None
) -> list[SpecProblem]:
    """One SpecProblem per pydantic error, with readable field paths and did-you-mean hints."""
    root = root or GPTSpec
    problems = []
    for error in exc.errors(include_url=False):
        data_loc, display, parent, leaf = _walk(root, error["loc"])
        problems.append(
            SpecProblem(file, display, _message(error, parent, leaf, data_loc), doc.line_of(data_loc))
        )
    return problems


def _message(error: Mapping[str, Any], parent: Any, leaf: Any, loc: tuple) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        allowed = list(parent.model_fields) if _is_model(parent) else []
        hint = did_you_mean(key, allowed) or (f" (allowed: {', '.join(allowed)})" if allowed else "")
        return f"unknown field {key!r}{hint}"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind == "literal_error" and typing.get_origin(leaf) is Literal:
        message += did_you_mean(str(error.get("input")), [str(a) for a in typing.get_args(leaf)])
    if kind == "missing":
        message = "required field is missing"
    return message


def _walk(root: type[BaseModel], loc: tuple) -> tuple[tuple, str, Any, Any]:
    """Follow a pydantic error location through the spec's types.

    Returns the location in the YAML data (union tags removed), its display form
    (`tools[0].action.auth`), the type holding the last part and the type at it.
    """
    current: Any = root
    parent: Any = None
    data_loc: list[str | int] = []
    display = ""
    for part in loc:
        current = _unwrap(current)
        members = _union_members(current)
        if members and isinstance(part, str) and part in members:
            current = members[part]
            continue
        parent = current
        data_loc.append(part)
        if isinstance(part, int):
            display += f"[{part}]"
            args = typing.get_args(current)
            current = args[0] if args else None
            continue
        display += f".{part}" if display else str(part)
        if _is_model(current):
            field = current.model_fields.get(part)
            current = field.annotation if field else None
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            current = None
    return tuple(data_loc), display, _unwrap(parent), _unwrap(current)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional so the walker sees the type that matters."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
            else:
                return tp
        else:
            return tp


def _union_members(tp: Any) -> dict[str, Any]:
    """Tag → member for a tagged union, the way pydantic names them in error locations."""
    if typing.get_origin(tp) not in (Union, types.UnionType):
        return {}
    members: dict[str, Any] = {}
    for arg in typing.get_args(tp):
        if typing.get_origin(arg) is typing.Annotated:
            for meta in arg.__metadata__:
                if isinstance(meta, Tag):
                    members[meta.tag] = typing.get_args(arg)[0]
        elif isinstance(arg, type):
            members[arg.__name__] = arg
    return members


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)
