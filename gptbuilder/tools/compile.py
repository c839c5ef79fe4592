"""Turn a spec's `tools:` entries into langchain-core tools, failing at compile time on what is missing."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.tools import BaseTool

from ..errors import ToolError
from ..spec import ActionTool, BuiltinTool, FunctionTool, LoadedSpec


def build_tools(loaded: LoadedSpec) -> list[BaseTool]:
    """Every tool the spec names; ToolError (naming the entry) when one cannot be built."""
    from .actions import action_tools
    from .builtin import builtin_tool
    from .functions import function_tool

    tools: list[BaseTool] = []
    for index, entry in enumerate(loaded.spec.tools):
        where = f"{loaded.id}: tools[{index}]"
        try:
            if isinstance(entry, BuiltinTool):
                tools.append(builtin_tool(entry.builtin, dict(entry.options), allow_private=loaded.spec.allow_private_network))
            elif isinstance(entry, FunctionTool):
                tools.append(function_tool(entry.function, base_dir=loaded.folder))
            elif isinstance(entry, ActionTool):
                built = action_tools(entry.action, spec_folder=loaded.folder, allow_private=loaded.spec.allow_private_network)
                tools.extend(built)  # requires_confirmation in metadata: the Agent asks before running those
        except ToolError as exc:
            raise ToolError(f"{where}: {exc}") from exc
    _check_unique(loaded.id, tools)
    return tools


def _check_unique(gpt_id: str, tools: Sequence[BaseTool]) -> None:
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise ToolError(f"{gpt_id}: two tools are named {tool.name!r}; tool names must be unique")
        seen.add(tool.name)
