"""Turn a spec's `tools:` entries into langchain-core tools, failing at compile time on what is missing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from ..errors import ToolError
from ..spec import ActionTool, BuiltinTool, FunctionTool, LoadedSpec

CONFIRMATION_UNAVAILABLE = (
    "{name} changes something, so it needs the user's explicit approval, and this version of gptbuilder "
    "cannot ask for it yet. It was not run. Tell the user you cannot do this here."
)


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
                tools.append(builtin_tool(entry.builtin, dict(entry.options)))
            elif isinstance(entry, FunctionTool):
                tools.append(function_tool(entry.function, base_dir=loaded.folder))
            elif isinstance(entry, ActionTool):
                built = action_tools(entry.action, spec_folder=loaded.folder, allow_private=loaded.spec.allow_private_network)
                tools.extend(_guard_confirmation(t) for t in built)
        except ToolError as exc:
            raise ToolError(f"{where}: {exc}") from exc
    _check_unique(loaded.id, tools)
    return tools


def _guard_confirmation(tool: BaseTool) -> BaseTool:
    """Replace a tool that needs the user's approval with one that refuses and says why.

    The approval round-trip (a confirmation event, then running only after the user says yes) needs
    conversation state that lands with the store's history; until then such calls are never made.
    """
    if not (tool.metadata or {}).get("requires_confirmation"):
        return tool

    def refuse(**_: Any) -> str:
        raise ToolException(CONFIRMATION_UNAVAILABLE.format(name=tool.name))

    return StructuredTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        func=refuse,
        handle_tool_error=True,
        metadata={**(tool.metadata or {}), "refused": "confirmation unavailable"},
    )


def _check_unique(gpt_id: str, tools: Sequence[BaseTool]) -> None:
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise ToolError(f"{gpt_id}: two tools are named {tool.name!r}; tool names must be unique")
        seen.add(tool.name)
