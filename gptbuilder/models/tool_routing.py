"""Deciding whether a request needs a tool, by meaning, for models too small to decide well.

A 135M model fills a tool's arguments reliably once it is told which tool to call (the grammar
does the rest), but its own choice between answering and calling is close to random. The router
makes that choice first: it embeds each tool's name and description once, compares them with the
user's latest message, and picks the best tool when the similarity clears a threshold, else an
answer. The model then decodes under a grammar for that single branch. `bench/tool_calls.py`
measures it against letting the model choose.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from .options import OptionCheck, number, one_of
from .tool_calling import OpenAITool

DEFAULT_THRESHOLD = 0.3
ROUTING_MODES = ("embedding", "model")
# The `model.options` every local model takes, with their checks (see options.option_problems).
ROUTING_OPTIONS: dict[str, OptionCheck | None] = {
    "tool_routing": one_of(*ROUTING_MODES),
    "tool_route_threshold": number(-1, 1, meaning="a cosine similarity"),
}

Embed = Callable[[Sequence[str]], list[list[float]]]


@dataclass(frozen=True)
class Route:
    """The router's decision: a tool name (None: answer) and the similarity it was based on."""

    tool: str | None
    score: float


def _words(name: str) -> str:
    """`get_order`, `getOrder` and `get-order` as "get order"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ").lower()


def tool_text(tool: OpenAITool) -> str:
    """What a tool is about, as text to embed: its name in words, description and parameter docs."""
    function = tool["function"]
    parts = [_words(function["name"]), function.get("description", "")]
    for name, spec in ((function.get("parameters") or {}).get("properties") or {}).items():
        parts.append(f"{_words(name)}: {spec.get('description', '')}".strip(" :"))
    return ". ".join(p.strip() for p in parts if p and p.strip())


def latest_request(messages: Sequence[BaseMessage]) -> str | None:
    """The text of the last message when it is the user's (routing applies to fresh requests only)."""
    if messages and isinstance(messages[-1], HumanMessage):
        return messages[-1].text
    return None


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class ToolRouter:
    """Chooses a tool (or none) for a request by embedding similarity; tool vectors are cached."""

    def __init__(self, embed: Embed):
        self.embed = embed
        self._vectors: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def route(self, tools: Sequence[OpenAITool], request: str, threshold: float = DEFAULT_THRESHOLD) -> Route:
        """The best-matching tool when it clears the threshold, else Route(None, best score)."""
        if not tools or not request.strip():
            return Route(None, 0.0)
        texts = [tool_text(t) for t in tools]
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
            if missing:
                self._vectors.update(zip(missing, self.embed(missing)))
            vectors = [self._vectors[t] for t in texts]
        query = self.embed([request])[0]
        scores = [_cosine(query, v) for v in vectors]
        best = max(range(len(tools)), key=scores.__getitem__)
        if scores[best] < threshold:
            return Route(None, scores[best])
        return Route(tools[best]["function"]["name"], scores[best])


_default_router: ToolRouter | None = None
_default_lock = threading.Lock()


def default_router() -> ToolRouter:
    """A router over the packaged MiniLM embedder (loaded once per process, on first use)."""
    global _default_router
    with _default_lock:
        if _default_router is None:
            from ..knowledge.embeddings import get_embedder

            _default_router = ToolRouter(get_embedder(None).embed)
        return _default_router


def routed_choice(
    tools: Sequence[OpenAITool],
    messages: Sequence[BaseMessage],
    tool_choice: Any,
    *,
    mode: str = "embedding",
    threshold: float = DEFAULT_THRESHOLD,
    router: ToolRouter | None = None,
) -> Any:
    """The tool choice to decode with: an explicit choice stands; "auto" becomes one tool or "none"."""
    if mode != "embedding" or tool_choice not in (None, "auto"):
        return tool_choice
    request = latest_request(messages)
    if request is None:
        return tool_choice
    route = (router or default_router()).route(tools, request, threshold)
    return {"type": "function", "function": {"name": route.tool}} if route.tool else "none"


def routing_fields(options: dict[str, Any]) -> dict[str, Any]:
    """Pop the routing keys out of a spec's `model.options` as chat-model fields (null means unset)."""
    fields = {key: options.pop(key) for key in ROUTING_OPTIONS if key in options}
    return {key: value for key, value in fields.items() if value is not None}
