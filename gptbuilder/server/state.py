"""The collaborators one app shares between its routes."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from ..agent import Agent
from ..events import Done, Event, Moderated
from ..history import History
from ..pending import PendingCalls
from ..store import Store
from .auth import Caller, KeyChecker
from .config import ServerConfig
from .errors import APIError
from .metrics import Metrics
from .ratelimit import RateLimiter
from .runner import ModelQueue
from .usage import UsageLedger
from .warmup import WarmUp


@dataclass
class ServerState:
    """Store, settings, database-backed ledgers, limiter, queue, metrics and warm-up of one app."""

    store: Store
    config: ServerConfig
    history: History
    ledger: UsageLedger
    limiter: RateLimiter
    queue: ModelQueue
    metrics: Metrics
    keys: KeyChecker
    pending: PendingCalls  # tool calls paused for approval, shared by every replica
    warm_up: WarmUp  # loads every GPT before /ready says ready

    def caller(self, request: HTTPConnection, *, counted: bool = True) -> Caller:
        """Authenticate a protected request and, when ``counted``, count it against the key's and the IP's limits."""
        caller = self.keys.caller(request)
        if not counted:
            return caller
        if self.config.auth_required:
            self.limiter.hit("API key", caller.key_id, self.config.requests_per_minute_per_key)
        self.limiter.hit("IP address", caller.ip, self.config.requests_per_minute_per_ip)
        return caller

    async def agent(self, gpt_id: str) -> Agent:
        """The GPT's agent (404 with did-you-mean when unknown), after its own spec limits allow a request.

        Looked up in a worker thread: a first request compiles the agent (loading a model can take
        seconds), and the event loop must keep serving everyone else meanwhile.
        """
        agent = await run_in_threadpool(self.store.agent, gpt_id)
        self.limiter.check_gpt(agent.id, agent.loaded.spec.limits)
        return agent

    def check_messages(self, messages: list[dict[str, Any]]) -> None:
        """Caps on message count and length, before any model work."""
        cap = self.config.max_messages
        if len(messages) > cap:
            raise APIError(
                400, f"{len(messages):,} messages sent; at most {cap:,} are accepted", param="messages", code="too_many_messages"
            )
        longest = max((len(m.get("content") or "") for m in messages), default=0)
        if longest > self.config.max_message_chars:
            raise APIError(
                400,
                f"a message is {longest:,} characters; at most {self.config.max_message_chars:,} are accepted",
                param="messages",
                code="message_too_long",
            )

    def check_max_tokens(self, max_tokens: int | None) -> int | None:
        """Refuse an answer length beyond the server's cap."""
        if max_tokens is not None and max_tokens > self.config.max_tokens_cap:
            raise APIError(
                400,
                f"max_tokens {max_tokens:,} is above this server's cap of {self.config.max_tokens_cap:,}",
                param="max_tokens",
                code="max_tokens_too_large",
            )
        return max_tokens

    async def generate(self, agent: Agent, messages: Any, options: dict[str, Any]) -> AsyncGenerator[Event, None]:
        """Admit a generation (503 when the queue is full) and return its events.

        The first event is awaited here, so bad input and model failures before any output raise now
        (a proper error status) instead of inside an already started stream.
        """
        self.queue.admit()
        try:
            events = self.queue.events(lambda: _stream(agent, messages, options))
            first = await anext(events)
        except BaseException:
            self.queue.release()
            raise
        return self._chain(first, events)

    async def _chain(self, first: Event, events: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
        try:
            self._count(first)
            yield first
            async for event in events:
                self._count(event)
                yield event
        finally:
            await events.aclose()
            self.queue.release()

    def _count(self, event: Event) -> None:
        """Count what moderation did in the metrics, whichever route the answer goes out by."""
        if isinstance(event, Moderated):
            self.metrics.moderated.labels(event.side, event.check, event.action).inc()

    def account(self, key_id: str, agent: Agent, done: Done) -> None:
        """Record a finished answer: usage (per API key id, or widget origin), the GPT's token budget, metrics."""
        usage = done.usage
        self.metrics.tokens.labels(agent.id, "prompt").inc(usage.prompt_tokens)
        self.metrics.tokens.labels(agent.id, "completion").inc(usage.completion_tokens)
        self.limiter.add_tokens(agent.id, agent.loaded.spec.limits, usage.total_tokens)
        self.ledger.add(key_id, agent.id, usage)


def _stream(agent: Agent, messages: Any, options: dict[str, Any]) -> Generator[Event, None, None]:
    return agent.stream(messages, **options)
