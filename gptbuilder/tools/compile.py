"""A spec's `tools:` entries: each kind's cheap `check()` for validation and `build()` into langchain-core tools."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ToolError
from ..spec import ActionTool, BuiltinTool, FunctionTool, MCPTool

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from ..loader import LoadedSpec


@dataclass(frozen=True)
class ToolProblem:
    """A problem a tool check found: at ``field`` of the entry (`options.timeot`), or inside a file it names."""

    field: str
    message: str
    file: str | None = None  # that file, relative to the spec's folder (an action's OpenAPI document)
    line: int | None = None  # the line in that file


class ToolKind(Protocol):
    """One kind of `tools:` entry (built-in, function, action), the way `Provider` is one kind of model."""

    imports_code: bool  # `check` imports the spec's own code: only for the operator's specs, when asked

    def check(self, entry: Any, *, folder: Path, allow_private: bool) -> list[ToolProblem]:
        """Cheap checks for `gptbuilder validate`: what `build` would refuse, without building or calling anything."""
        ...

    def build(self, entry: Any, *, folder: Path, allow_private: bool) -> list[BaseTool]:
        """The tools of this entry; ToolError (or SpecError for the files it names) saying what to fix."""
        ...


def tool_kind(entry: Any) -> ToolKind:
    """The kind that checks and builds ``entry`` (a validated `tools:` entry)."""
    from .actions import ActionKind
    from .builtin import BuiltinKind
    from .functions import FunctionKind
    from .mcp import MCPKind

    kinds: dict[type, ToolKind] = {BuiltinTool: BuiltinKind(), FunctionTool: FunctionKind(), ActionTool: ActionKind(),
                                   MCPTool: MCPKind()}
    return kinds[type(entry)]


def check_tool(entry: Any, *, folder: Path, allow_private: bool, imports: bool = False) -> list[ToolProblem]:
    """Every problem of one `tools:` entry that can be found without running it; ``imports`` allows importing code."""
    kind = tool_kind(entry)
    if kind.imports_code and not imports:
        return []
    try:
        return kind.check(entry, folder=folder, allow_private=allow_private)
    except Exception as exc:  # a bug in a check must not take validation down
        return [ToolProblem("", f"checking this tool failed: {type(exc).__name__}: {exc}")]


def build_tools(loaded: LoadedSpec) -> list[BaseTool]:
    """Every tool the spec names; ToolError (naming the entry) when one cannot be built."""
    tools: list[BaseTool] = []
    for index, entry in enumerate(loaded.spec.tools):
        if not loaded.trusted and isinstance(entry, FunctionTool):  # the loader refuses these; never import one
            raise ToolError(f"{loaded.id}: tools[{index}]: function tools are not allowed in specs saved through the store")
        if not loaded.trusted and isinstance(entry, MCPTool) and entry.mcp.command:  # a command runs code, like a function
            raise ToolError(f"{loaded.id}: tools[{index}]: MCP servers run as commands are not allowed in specs saved through "
                            "the store; use a url")
        try:
            # an action's tools carry requires_confirmation in metadata: the Agent asks before running those
            tools.extend(tool_kind(entry).build(entry, folder=loaded.folder, allow_private=loaded.spec.allow_private_network))
        except ToolError as exc:
            raise ToolError(f"{loaded.id}: tools[{index}]: {exc}") from exc
    _check_unique(loaded.id, tools)
    return tools


def _check_unique(gpt_id: str, tools: Sequence[BaseTool]) -> None:
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise ToolError(f"{gpt_id}: two tools are named {tool.name!r}; tool names must be unique")
        seen.add(tool.name)
