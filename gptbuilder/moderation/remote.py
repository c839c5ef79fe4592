"""The remote check: an OpenAI-compatible `/v1/moderations` endpoint judges the text; `flagged` blocks it.

Requests go through the tools' SSRF guard (tools/network.py): http(s) only, the address vetted at connect
time, private and loopback addresses refused unless allowed, cloud metadata addresses always, redirects
checked, the answer capped, one deadline (`timeout`) for the whole exchange. The key comes from the
environment variable `api_key_env` names and is sent as a Bearer token; without one, no key is sent
(OPENAI_API_KEY is never sent to an endpoint the config did not give a key for).

When the endpoint cannot answer (timeout, refused, an HTTP error, an answer not in OpenAI's shape),
`on_error` decides: block (the default: the text is treated as flagged, category `unavailable`) or allow;
either way the server's log says why.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import urlsplit

from ..errors import ModelError
from ..spec import RemoteModerationConfig
from .base import Verdict

logger = logging.getLogger("gptbuilder.moderation")

UNAVAILABLE = "unavailable"  # the category of a turn blocked because the endpoint could not judge it
MAX_ANSWER_BYTES = 1_000_000


class RemoteCheck:
    """Asks a moderation endpoint about one text at a time; a flagged text is one finding spanning all of it."""

    name = "remote"

    def __init__(self, config: RemoteModerationConfig, *, allow_private: bool = False):
        self.config = config
        self.allow_private = allow_private or config.allow_private_network
        self.host = urlsplit(config.url).hostname or config.url
        self._key: str | None = None
        if config.api_key_env:
            self._key = os.environ.get(config.api_key_env) or None
            if self._key is None:
                raise ModelError(f"environment variable {config.api_key_env} is not set; it must hold the key for the "
                                 f"moderation endpoint {config.url} (moderation.remote.api_key_env)")

    def judge(self, text: str) -> dict[str, Any]:
        """The endpoint's result for the text (`flagged`, `categories`, `category_scores`); GPTBuilderError when it fails."""
        from ..tools.network import NetworkError, guarded_client

        body: dict[str, Any] = {"input": text, **({"model": self.config.model} if self.config.model else {})}
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        try:
            with guarded_client(allow_private=self.allow_private, timeout=self.config.timeout,
                                max_response_bytes=MAX_ANSWER_BYTES) as client:
                response = client.request("POST", self.config.url, json=body, headers=headers)
        except NetworkError as exc:
            raise ModelError(str(exc)) from None
        if not response.is_success:
            raise ModelError(f"{self.host} answered {response.status_code} {response.reason_phrase}: {response.text[:200]}")
        try:
            result = response.json()["results"][0]
            flagged, categories = result["flagged"], result.get("categories") or {}
            scores = result.get("category_scores") or {}
            if not isinstance(flagged, bool) or not isinstance(categories, dict) or not isinstance(scores, dict):
                raise TypeError
        except (ValueError, KeyError, IndexError, TypeError):
            raise ModelError(f"{self.host} answered something that is not a moderation result: {response.text[:200]!r}") from None
        return {"flagged": flagged, "categories": categories, "category_scores": scores}

    def check(self, text: str) -> Verdict | None:
        """A finding (the endpoint's most likely flagged category) when the text is flagged or, with on_error:
        block, when the endpoint could not judge it; None when it passes."""
        try:
            result = self.judge(text)
        except ModelError as exc:
            return self.failed(exc, text)
        if not result["flagged"]:
            return None
        return Verdict(self.name, flagged_category(result), 0, len(text))

    def failed(self, error: ModelError, text: str) -> Verdict | None:
        """What on_error makes of an endpoint that could not judge the text (logged with the reason)."""
        blocked = self.config.on_error == "block"
        logger.warning("remote moderation at %s failed (%s); %s, as on_error: %s says", self.host, error,
                       "the text is blocked" if blocked else "the text is let through", self.config.on_error)
        return Verdict(self.name, UNAVAILABLE, 0, len(text)) if blocked else None


def flagged_category(result: dict[str, Any]) -> str:
    """The flagged category with the highest score ("flagged" when the endpoint names none)."""
    scores = result.get("category_scores") or {}
    flagged = [name for name, on in (result.get("categories") or {}).items() if on is True]

    def score(name: str) -> float:
        value = scores.get(name)
        return float(value) if isinstance(value, int | float) else 0.0

    return str(max(flagged, key=score)) if flagged else "flagged"
