"""Personal data masked wherever gptbuilder keeps text: stored conversations, feedback, stored responses
(and logs: see logs.py).

This is not a GPT's `moderation:` (which decides what answers show, `pii: mask`); it always runs, whatever
a GPT's config says, with every kind the PII check knows: `[email]`, `[phone]`, `[card]`, `[iban]`.
Identifiers (`id`, `*_id` keys) and data URLs (images, files) are kept as they are, so a stored
conversation still links its tool calls to their results and its images still decode.
"""

from __future__ import annotations

import json
from typing import Any

from .pii import PII

_PII = PII()
_KEPT_KEYS = ("id",)


def mask_text(text: str) -> str:
    """The text with its personal data replaced by `[kind]` (data URLs are left alone)."""
    if not text or text.startswith("data:"):
        return text
    masked, _ = _PII.mask(text)
    return masked


def mask_value(value: Any) -> Any:
    """A JSON-like value with every string masked, except identifiers (`id`, `*_id`) and data URLs.

    A string under `arguments` that holds JSON (a tool call's) is masked inside and written back as JSON, so
    a number masked there does not break it.
    """
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list | tuple):
        return [mask_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _masked_item(key, item) for key, item in value.items()}
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**12:
        masked = mask_text(str(value))  # a card number given as a JSON number
        return value if masked == str(value) else masked
    return value


def _masked_item(key: Any, item: Any) -> Any:
    if isinstance(key, str) and (key in _KEPT_KEYS or key.endswith("_id")):
        return item
    if key == "arguments" and isinstance(item, str):
        try:
            parsed = json.loads(item)
        except ValueError:
            return mask_text(item)
        masked = mask_value(parsed)
        return item if masked == parsed else json.dumps(masked, ensure_ascii=False)
    return mask_value(item)
