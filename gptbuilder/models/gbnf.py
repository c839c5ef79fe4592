"""JSON schema to llama.cpp grammar (GBNF), bounded so that a hostile schema is a clear error, never a crash.

llama-cpp-python's converter spells every repetition out (`maxLength: 2000` is 2000 nested rules, a
`pattern` of `(a{1000}){1000}` a million characters), its work on optional properties grows with their
square, and llama.cpp's grammar parser refuses large repetitions by returning NULL, which the sampler
chain then dereferences: a segmentation fault that takes the server down. Measured on llama-cpp-python
0.3.36: maxLength 1000 compiles (8 KB of GBNF), 1500 and up is refused; 400 optional properties take
0.2 s, 1000 exceed Python's recursion limit. So the counts are bounded before converting, the
converter's failures are caught, and the grammar is parsed once here, checked, before any sampler sees it.
"""

from __future__ import annotations

import json
import re
import re._parser as sre  # the stdlib's regex parser (and its opcodes): what a pattern expands to
from typing import Any

from ..errors import InputError
from .structured import walk

MAX_REPEAT = 1000  # largest minLength/maxLength/minItems/maxItems/...; the converter writes out each one
MAX_OPTIONAL = 100  # optional properties in one object: 100 convert in 0.015 s, 400 in 0.2 s
MAX_PATTERN = 1000  # characters a `pattern` may spell out, repetitions expanded
MAX_GRAMMAR_CHARS = 1 << 20  # GBNF text llama.cpp parses (60 strings of maxLength 1000: 490 KB, parsed in 0.14 s)
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains", "maxContains")
_LOOSE_CHAR = re.compile(r'^(char ::= )\[\^"\\\\\] \|', re.MULTILINE)
_JSON_CHAR = r'[^"\\\x7F\x00-\x1F] |'  # as in llama.cpp's JSON grammar
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT}


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """The GBNF grammar of ``schema``; InputError naming what makes it too large for llama.cpp."""
    check_bounds(schema)
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except RecursionError:
        raise InputError("the schema is too complex to compile to a grammar (it nests too deeply)") from None
    except Exception as exc:  # the converter asserts, and raises KeyError/TypeError/ValueError on what it cannot read
        raise InputError(f"the schema cannot be compiled to a grammar: {_short(exc)}") from None
    # The converter's string characters include raw control characters (a line break inside a string), which
    # JSON forbids and strict parsers (pydantic's, so the openai SDK's parse) refuse; llama.cpp's own JSON grammar excludes them.
    grammar = _LOOSE_CHAR.sub(lambda match: match.group(1) + _JSON_CHAR, grammar)
    if len(grammar) > MAX_GRAMMAR_CHARS:
        raise InputError(f"the schema is too large to compile: its grammar is {len(grammar)} characters, at most {MAX_GRAMMAR_CHARS}")
    return grammar


def check_bounds(schema: dict[str, Any]) -> None:
    """InputError for a count, an object's optional properties or a pattern beyond what the converter can write out."""
    for path, node in walk(schema):
        where = path or "the schema"
        for key in _COUNTS:
            count = node.get(key)
            if isinstance(count, int) and not isinstance(count, bool) and count > MAX_REPEAT:
                raise InputError(f"{where}: {key} {count} is too large to compile to a grammar (at most {MAX_REPEAT} here)")
        properties, required = node.get("properties"), node.get("required")
        if isinstance(properties, dict):
            needed = set(required) if isinstance(required, list) and all(isinstance(r, str) for r in required) else set()
            optional = len(set(properties) - needed)
            if optional > MAX_OPTIONAL:
                raise InputError(
                    f"{where}: {optional} optional properties are too many to compile to a grammar (at most {MAX_OPTIONAL}; "
                    "list the others in 'required')"
                )
        pattern = node.get("pattern")
        if isinstance(pattern, str) and pattern_size(pattern) > MAX_PATTERN:
            raise InputError(
                f"{where}: pattern {pattern[:60]!r} spells out too much to compile to a grammar (at most {MAX_PATTERN} characters)"
            )


def pattern_size(pattern: str) -> int:
    """About how many characters a regular expression spells out with its repetitions written out (0: unreadable)."""
    try:
        parsed = sre.parse(pattern)
    except Exception:  # not a Python regex: the converter reads it its own way, or refuses it
        return 0
    return _size(list(parsed))


def _size(items: list[tuple[Any, Any]]) -> int:
    total = 0
    for op, value in items:
        if op in _REPEATS:
            low, high, sub = value
            copies = low + 1 if high == sre.MAXREPEAT else high  # unbounded: the minimum, then a star
            total += max(copies, 1) * _size(list(sub))
        elif op == sre.SUBPATTERN:
            total += _size(list(value[-1]))
        elif op == sre.BRANCH:
            total += sum(_size(list(branch)) for branch in value[1])
        elif op == sre.ATOMIC_GROUP:
            total += _size(list(value))
        elif op == sre.AT:
            pass  # ^ and $ spell nothing
        else:
            total += 1
        if total > MAX_PATTERN:
            return total  # enough to refuse; nested repetitions could make this number astronomically large
    return total


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
