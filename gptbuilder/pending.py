"""Tool calls the server issued and holds for the user's approval: the only calls a later turn may run.

A paused turn (a call that needs confirmation) holds its calls here, keyed by who asked (an API key id,
a widget session, a store conversation) and the GPT. The next turn approves or denies them by id; calls
that only appear in the conversation a client sent are history, never run. In memory for one process
(the CLI, tests); in the database for `serve` and the store (`history.DatabasePendingCalls`), so approvals
survive restarts and reach whichever replica gets the next request.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

HOLD_FOR = timedelta(days=1)  # an approval later than this finds nothing to approve
MAX_HELD = 10_000  # in memory: the oldest held steps are forgotten first

Call = Mapping[str, Any]  # langchain's tool call: {"id", "name", "args"}


class PendingCalls(Protocol):
    """Where paused tool calls wait for a decision."""

    def hold(self, owner: str, gpt_id: str, calls: Iterable[Call]) -> None:
        """Keep calls the model made and the server paused, for this owner and GPT."""
        ...

    def take(self, owner: str, gpt_id: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Remove and return the held calls with these ids (others stay); unknown ids are skipped."""
        ...


class MemoryPendingCalls:
    """Held calls in this process's memory, bounded (oldest forgotten first)."""

    def __init__(self, *, limit: int = MAX_HELD):
        self.limit = limit
        self._calls: OrderedDict[tuple[str, str, str], tuple[datetime, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def hold(self, owner: str, gpt_id: str, calls: Iterable[Call]) -> None:
        """Keep the calls, newest last."""
        now = datetime.now(UTC)
        with self._lock:
            for call in calls:
                self._calls[(owner, gpt_id, call["id"])] = (now, plain_call(call))
            while len(self._calls) > self.limit:
                self._calls.popitem(last=False)

    def take(self, owner: str, gpt_id: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        """The held calls with these ids, removed; expired ones are not returned."""
        cutoff = datetime.now(UTC) - HOLD_FOR
        taken = []
        with self._lock:
            for call_id in dict.fromkeys(ids):
                held = self._calls.pop((owner, gpt_id, call_id), None)
                if held is not None and held[0] >= cutoff:
                    taken.append(held[1])
        return taken


def plain_call(call: Call) -> dict[str, Any]:
    """A tool call reduced to what is held: id, name and arguments."""
    return {"id": call["id"], "name": call["name"], "args": dict(call.get("args") or {})}
