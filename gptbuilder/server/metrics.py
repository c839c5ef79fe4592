"""Prometheus metrics of one app, in its own registry (several apps in one process never collide)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Requests, tokens, latency, queue depth and moderated turns."""

    def __init__(self, queue_depth: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gptbuilder_requests", "API requests by route and status", ["route", "status"], registry=self.registry
        )
        self.tokens = Counter(
            "gptbuilder_tokens", "Tokens by GPT and kind (prompt, completion)", ["model", "kind"], registry=self.registry
        )
        self.latency = Histogram(
            "gptbuilder_request_seconds",
            "Time to a complete answer, by route",
            ["route"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.first_token = Histogram(
            "gptbuilder_first_token_seconds",
            "Time to the first streamed token",
            ["route"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.moderated = Counter(
            "gptbuilder_moderated_turns",
            "Turns moderation acted on, by side (input, output), check (blocklist, regex, pii) and action (blocked, masked)",
            ["side", "check", "action"],
            registry=self.registry,
        )
        depth = Gauge("gptbuilder_queue_depth", "Generations running or waiting", registry=self.registry)
        depth.set_function(queue_depth)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
