"""Rate limits with the `limits` library: per key, per IP, and each GPT's own `limits:` from its spec.

Counters live in ``ServerConfig.limits_storage`` (memory by default). Replicas behind a load balancer
count separately unless it names a shared storage such as ``redis://host:6379`` (GPTBUILDER_RATE_LIMIT_STORAGE).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from ..errors import InputError
from ..spec import LimitsConfig
from .errors import APIError


class RateLimiter:
    """Checks and counts requests (moving one-minute windows) and tokens (per-day windows)."""

    def __init__(self, storage_uri: str = "memory://"):
        try:
            storage = storage_from_string(storage_uri)
        except Exception as exc:  # unknown scheme, or its client library is not installed
            raise InputError(f"cannot use the rate-limit storage {storage_uri!r}: {exc}") from None
        self._requests = MovingWindowRateLimiter(storage)
        # A moving window stores one entry per unit of cost; token counts use a fixed daily window instead.
        self._tokens = FixedWindowRateLimiter(storage)

    def hit(self, scope: str, identity: str, per_minute: int | None) -> None:
        """Count one request for ``identity`` in ``scope``; 429 with Retry-After beyond ``per_minute``."""
        if not per_minute:
            return
        item = RateLimitItemPerMinute(per_minute)
        if not self._requests.hit(item, scope, identity):
            retry = self._retry(self._requests, item, scope, identity)
            raise _too_many(f"rate limit of {per_minute} requests per minute reached for this {scope}", retry)

    def refuse_when_spent(self, scope: str, identity: str, per_minute: int | None) -> None:
        """429 with Retry-After when ``identity`` has used up ``per_minute`` in ``scope``; counts nothing."""
        if not per_minute:
            return
        item = RateLimitItemPerMinute(per_minute)
        if not self._requests.test(item, scope, identity):
            retry = self._retry(self._requests, item, scope, identity)
            raise _too_many(f"too many {scope}s from this client ({per_minute} a minute)", retry)

    def spend(self, scope: str, identity: str, per_minute: int | None) -> None:
        """Count one event (a failed sign-in, say) for ``identity`` in ``scope`` without refusing this one."""
        if per_minute:
            self._requests.hit(RateLimitItemPerMinute(per_minute), scope, identity)

    def check_gpt(self, gpt_id: str, limits: LimitsConfig | None) -> None:
        """Refuse a request to a GPT whose spec limits are used up (requests/minute, tokens/day)."""
        if limits is None:
            return
        if limits.requests_per_minute:
            self.hit("gpt", gpt_id, limits.requests_per_minute)
        if limits.tokens_per_day:
            item = RateLimitItemPerDay(limits.tokens_per_day)
            if not self._tokens.test(item, "gpt-tokens", gpt_id):
                raise _too_many(
                    f"{gpt_id} has used its {limits.tokens_per_day:,} tokens for today",
                    self._retry(self._tokens, item, "gpt-tokens", gpt_id),
                )

    def add_tokens(self, gpt_id: str, limits: LimitsConfig | None, tokens: int) -> None:
        """Count an answer's tokens against the GPT's daily budget (the answer that crosses it still completes)."""
        if limits is None or not limits.tokens_per_day or tokens <= 0:
            return
        self._tokens.hit(RateLimitItemPerDay(limits.tokens_per_day), "gpt-tokens", gpt_id, cost=tokens)

    @staticmethod
    def _retry(limiter: MovingWindowRateLimiter | FixedWindowRateLimiter, item: RateLimitItem, *ids: str) -> int:
        reset = limiter.get_window_stats(item, *ids).reset_time
        return max(1, math.ceil(reset - time.time()))


def _too_many(message: str, retry_after: int) -> APIError:
    return APIError(429, f"{message}; retry in {retry_after} s", code="rate_limit_exceeded", headers={"Retry-After": str(retry_after)})
