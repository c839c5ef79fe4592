"""Warm start: every valid GPT's agent is built and warmed (see `Agent.warm`) before /ready says ready.

Without it the first request to each GPT paid for what later ones reuse: measured on the embedded model,
the first tool-using request after a start took 15-35 s (importing sentence-transformers, loading the
embedder, indexing knowledge, embedding tool descriptions) against 2-6 s for the next one.
Warm-up runs in a thread of its own, so `/health` answers at once while `/ready` says 503 "warming".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import GPTBuilderError

if TYPE_CHECKING:
    from ..agent import Agent
    from ..store import Store

logger = logging.getLogger("gptbuilder.server")

LAZY_ENV = "GPTBUILDER_LAZY"  # set (1/true/yes/on): load each GPT on its first request instead (`serve --lazy`)


def lazy_from_env() -> bool:
    """Whether GPTBUILDER_LAZY asks for no warm-up."""
    return os.environ.get(LAZY_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class WarmUp:
    """Builds and warms each valid GPT's agent once, in order; `report` says how far it got for /ready.

    A GPT whose warm-up fails is logged and reported, and the others go on. Requests arriving meanwhile
    are served (they load what they need themselves, sharing whatever is already loaded).
    """

    store: Store
    state: Literal["off", "pending", "warming", "done"] = "pending"
    seconds: dict[str, float] = field(default_factory=dict)  # GPT id -> seconds its warm-up took
    failed: dict[str, tuple[Agent | None, str]] = field(default_factory=dict)  # GPT id -> (its agent, if built; why)
    error: str | None = None  # why warm-up stopped short of the end
    total: int = 0
    current: str | None = None
    elapsed: float | None = None
    _finished: threading.Event = field(default_factory=threading.Event)
    _start_lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: bool = False

    @classmethod
    def off(cls, store: Store) -> WarmUp:
        """No warm-up (`serve --lazy`): /ready checks only that each GPT's agent can be built."""
        warm_up = cls(store, state="off")
        warm_up._finished.set()
        return warm_up

    def start(self) -> None:
        """Warm every GPT in a background thread (once; later calls do nothing)."""
        with self._start_lock:
            if self.state != "pending":
                return
            self.state = "warming"
        threading.Thread(target=self.run, name="gptbuilder-warm-up", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until warm-up has finished (or is off); False when ``timeout`` passed first."""
        return self._finished.wait(timeout)

    def stop(self) -> None:
        """Warm no further GPT (the one in progress finishes): the server is shutting down."""
        self._stopping = True

    def run(self) -> None:
        """Warm each valid GPT in turn, timing each; never raises."""
        self.state = "warming"
        started = time.perf_counter()
        try:
            specs = self.store.specs()
            self.total = len(specs)
            for loaded in specs:
                if self._stopping:
                    break
                self._warm(loaded.id)
        except Exception as exc:  # the store itself failed (its folder vanished): report it, never crash the server
            logger.exception("warm-up stopped: %s", exc)
            self.error = f"warm-up stopped: {type(exc).__name__}: {exc}"
        finally:
            self.current = None
            self.elapsed = time.perf_counter() - started
            self.state = "done"
            self._finished.set()
        failed = f"; failed: {', '.join(sorted(self.failed))}" if self.failed else ""
        logger.info("warm-up: %d of %d GPTs in %.1f s%s", len(self.seconds), self.total, self.elapsed, failed)

    def _warm(self, gpt_id: str) -> None:
        self.current = gpt_id
        started = time.perf_counter()
        agent: Agent | None = None
        try:
            agent = self.store.agent(gpt_id)
            with _indexing(agent):
                agent.warm()
        except Exception as exc:  # any failure is this GPT's alone: the others still warm
            why = f"{type(exc).__name__}: {exc}"
            self.failed[gpt_id] = (agent, f"warm-up failed: {why}")
            # A GPTBuilderError says what to fix; anything else is a bug, whose traceback helps.
            logger.warning("warm-up: %s failed (%s)", gpt_id, why, exc_info=not isinstance(exc, GPTBuilderError))
            return
        self.seconds[gpt_id] = round(time.perf_counter() - started, 3)
        logger.info("warm-up: %s in %.1f s", gpt_id, self.seconds[gpt_id])

    def problem(self, gpt_id: str, agent: Agent) -> str | None:
        """Why ``gpt_id`` is not ready when warming this very agent failed (one rebuilt from edited files is not blamed)."""
        failed = self.failed.get(gpt_id)
        return failed[1] if failed is not None and failed[0] is agent else None

    def report(self) -> dict[str, Any]:
        """Progress for /ready: state, GPTs warmed out of all, the one in progress, seconds each and in total."""
        report: dict[str, Any] = {"state": self.state}
        if self.state == "off":
            return report
        report.update(done=len(self.seconds) + len(self.failed), total=self.total, seconds=dict(self.seconds))
        if self.current is not None:
            report["current"] = self.current
        if self.elapsed is not None:
            report["elapsed"] = round(self.elapsed, 3)
        return report


@contextmanager
def _indexing(agent: Agent) -> Iterator[None]:
    """Hold the GPT's knowledge index for this process while warming it: `--workers N` share the data folder.

    The first worker indexes stale files; the others wait, then find the index fresh and only open it.
    """
    if agent.knowledge is None:
        yield
        return
    folder = Path(agent.knowledge.index.dir)
    lock_path = folder.parent / f".{folder.name}.warm-lock"
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock between workers
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
