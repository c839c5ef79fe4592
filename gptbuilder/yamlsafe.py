"""Read untrusted YAML: size-capped, plain tags only, no duplicate keys, no alias bombs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError, SpecProblem

MAX_BYTES = 1_000_000
MAX_NODES = 100_000  # after expanding aliases; a billion-laughs document is far above it

Loc = tuple[str | int, ...]


@dataclass
class YamlDocument:
    """Parsed YAML data plus the line of every key and list item, for error messages."""

    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest known prefix of ``loc``."""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`; SafeConstructor.flatten_mapping merges it below
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, (dict, list)):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain value", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first defined on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, *, display: str | None = None, max_bytes: int = MAX_BYTES) -> YamlDocument:
    """Parse one YAML file safely, raising SpecError with the line number on any problem."""
    shown = display or str(path)

    def fail(message: str, line: int | None = None) -> SpecError:
        return SpecError([SpecProblem(shown, "", message, line)])

    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise fail(f"file is {size:,} bytes; a spec may be at most {max_bytes:,} bytes")
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise fail("file not found") from None
    except IsADirectoryError:
        raise fail("is a folder, not a spec file") from None
    except OSError as exc:
        raise fail(f"cannot read file: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise fail(f"file is over {max_bytes:,} bytes; a spec may be at most {max_bytes:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (bad byte at offset {exc.start})") from None
    return parse_yaml(text, display=shown)


def parse_yaml(text: str, *, display: str = "<string>") -> YamlDocument:
    """Parse YAML text safely (see read_yaml)."""

    def fail(message: str, line: int | None = None) -> SpecError:
        return SpecError([SpecProblem(display, "", message, line)])

    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # its reader refuses control characters already here
        root = loader.get_single_node()
        if root is None:
            raise fail("file is empty; a spec needs at least 'name' and 'instructions'")
        if _is_recursive(root, set(), set()):
            raise fail("an alias refers to a value that contains it (a recursive alias); write the values out instead",
                       root.start_mark.line + 1)
        if _expanded_size(root, {}) > MAX_NODES:
            raise fail(
                f"document expands to more than {MAX_NODES:,} values through aliases "
                "(an alias bomb?); write the values out instead",
                root.start_mark.line + 1,
            )
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if "could not determine a constructor" in problem:
            problem = f"tag {exc.problem.split('tag ')[-1]} is not allowed; only plain YAML values are"
        raise fail(f"invalid YAML: {problem}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise fail(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise fail("invalid YAML: values are nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "nothing"
        raise fail(f"a spec must be a mapping of fields (name: ..., instructions: ...), got {kind}")
    lines: dict[Loc, int] = {}
    _record_lines(root, (), lines)
    return YamlDocument(data, lines)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Number of values the node becomes once aliases are expanded (memoised, so bombs stay cheap)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once instead of looping
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        size = 1
    memo[key] = min(size, MAX_NODES + 1)
    return memo[key]


def _is_recursive(node: yaml.Node, visiting: set[int], done: set[int]) -> bool:
    key = id(node)
    if key in done:
        return False
    if key in visiting:
        return True
    visiting.add(key)
    children = []
    if isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    found = any(_is_recursive(child, visiting, done) for child in children)
    visiting.discard(key)
    done.add(key)
    return found


def _record_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], depth: int = 0) -> None:
    if depth > 50:
        return
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = (*loc, key_node.value)
                lines.setdefault(child, key_node.start_mark.line + 1)
                _record_lines(value_node, child, lines, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*loc, index)
            lines.setdefault(child, item.start_mark.line + 1)
            _record_lines(item, child, lines, depth + 1)
