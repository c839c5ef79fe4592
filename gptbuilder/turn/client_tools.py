"""The caller's tools inside a GPT's own tool loop: offered beside the GPT's tools, ending the loop when chosen.

A GPT with tools compiles to langchain's create_agent. The caller's tools go in as OpenAI tool dicts,
which create_agent binds to the model but never runs (its tools node runs BaseTools only). This
middleware makes a step that calls one of them the end of the loop: nothing in that step runs on the
server (the GPT's calls beside it neither), and the caller gets the calls to run and send back.
Imported only when such a turn runs: it pulls in langchain.agents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, hook_config
from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from ..models.tool_calling import tool_name


class ClientToolsMiddleware(AgentMiddleware):
    """Offers the caller's tools and ends the loop at a step that calls one.

    ``tool_choice`` is the caller's and applies to its own tools, on the turn's first model call only
    (later calls in the loop follow the GPT's tool results): "required" offers only the caller's tools
    and makes the model call one; a named function makes it call that one. ``first_call`` is the number
    of messages the loop starts with, so the first call is the one that sees no more than those.
    """

    def __init__(self, tools: Sequence[dict[str, Any]], tool_choice: Any, *, first_call: int):
        super().__init__()
        # Not `self.tools`: that is where a middleware lists tools of its own for the tools node to run.
        self.names = frozenset(tool_name(t) for t in tools)
        self.tool_choice = tool_choice
        self.first_call = first_call

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], Any]) -> Any:
        """The first call with the caller's tool_choice applied; every other call as it is."""
        choice = self.tool_choice
        if choice in (None, "auto") or len(request.messages) > self.first_call:
            return handler(request)
        if choice in ("required", "any"):
            return handler(request.override(tools=[t for t in request.tools if tool_name(t) in self.names], tool_choice=choice))
        return handler(request.override(tool_choice=choice))

    @hook_config(can_jump_to=["end"])
    def after_model(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        """End the loop when the model called one of the caller's tools: they are the caller's to run."""
        last = state["messages"][-1] if state.get("messages") else None
        if isinstance(last, AIMessage) and self.calls(last):
            return {"jump_to": "end"}
        return None

    def calls(self, message: AIMessage) -> list[dict[str, Any]]:
        """The calls of the caller's tools in one model step."""
        return [dict(call) for call in message.tool_calls if call["name"] in self.names]
