"""Run agents off the event loop behind a bounded queue; stream their events back; stop on disconnect."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import anyio

from ..events import Event
from .errors import APIError

_END = object()


@dataclass
class _Failure:
    error: BaseException


class ModelQueue:
    """At most ``workers`` generations run at once and ``queue_size`` wait; beyond that, 503 at once.

    Each request streams through its own channel, so concurrent answers never mix their tokens (a
    local model additionally serialises generation on its own lock).
    """

    def __init__(self, *, workers: int, queue_size: int):
        self.workers = workers
        self.capacity = workers + queue_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gptbuilder-gen")
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0

    @property
    def depth(self) -> int:
        """Requests admitted and not finished (running plus waiting)."""
        return self._admitted

    @property
    def waiting(self) -> int:
        """Requests admitted but not started."""
        return self._admitted - self._running

    def admit(self) -> None:
        """Take a place or raise 503 (queue full) without waiting."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise APIError(
                    503,
                    f"the model queue is full ({self.capacity} requests in progress); retry shortly",
                    code="queue_full",
                    headers={"Retry-After": "1"},
                )
            self._admitted += 1

    def release(self) -> None:
        """Give back a place taken by `admit`."""
        with self._lock:
            self._admitted -= 1

    async def events(self, produce: Callable[[], Generator[Event, None, None]]) -> AsyncGenerator[Event, None]:
        """Iterate ``produce()`` in a worker thread; closing this iterator stops the generation.

        The caller must have called `admit` and calls `release` afterwards.
        """
        loop = asyncio.get_running_loop()
        channel: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def send(item: object) -> None:
            try:
                loop.call_soon_threadsafe(channel.put_nowait, item)
            except RuntimeError:  # the loop is gone (server shutting down)
                stop.set()

        def work() -> None:
            with self._lock:
                self._running += 1
            try:
                if stop.is_set():
                    return
                generation = produce()
                try:
                    for event in generation:
                        if stop.is_set():
                            break  # the client left: closing the generator stops the model mid-answer
                        send(event)
                finally:
                    generation.close()
            except BaseException as exc:  # handed to the request, which translates it
                send(_Failure(exc))
            finally:
                with self._lock:
                    self._running -= 1
                send(_END)

        future = loop.run_in_executor(self._executor, work)
        try:
            while True:
                item = await channel.get()
                if item is _END:
                    break
                if isinstance(item, _Failure):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            stop.set()
            # Wait for the worker to notice (after at most one more token), so the place this request
            # held is free only when its generation really stopped.
            with anyio.CancelScope(shield=True):  # a disconnect cancels this task again and again (anyio)
                await future

    def shutdown(self) -> None:
        """Stop taking work; running generations finish in the background."""
        self._executor.shutdown(wait=False, cancel_futures=True)
