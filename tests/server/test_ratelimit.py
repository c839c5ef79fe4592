"""Rate limits: moving one-minute windows per identity, daily token budgets per GPT."""

from __future__ import annotations

import pytest

from gptbuilder.server.errors import APIError
from gptbuilder.server.ratelimit import RateLimiter
from gptbuilder.spec import LimitsConfig


def test_requests_per_minute_per_identity():
    limiter = RateLimiter()
    for _ in range(2):
        limiter.hit("API key", "a", 2)
    limiter.hit("API key", "b", 2)  # another identity has its own window
    with pytest.raises(APIError) as refused:
        limiter.hit("API key", "a", 2)
    assert refused.value.status == 429 and "2 requests per minute" in refused.value.message
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    limiter.hit("API key", "a", None)  # no limit configured


def test_token_budget_counts_whole_answers():
    limiter = RateLimiter()
    limits = LimitsConfig(tokens_per_day=100)
    limiter.check_gpt("g", limits)
    limiter.add_tokens("g", limits, 60)
    limiter.check_gpt("g", limits)
    limiter.add_tokens("g", limits, 60)  # the answer that crosses the budget still counts in full
    with pytest.raises(APIError, match="used its 100 tokens for today"):
        limiter.check_gpt("g", limits)
    limiter.check_gpt("other", limits)
    limiter.check_gpt("g", None)
