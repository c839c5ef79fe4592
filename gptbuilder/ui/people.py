"""Who is using the store: the identity `serve` put on each request, or the machine's own user for `python app.py`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import gradio as gr

from ..access import IDENTITY_SCOPE_KEY, LOCAL_ADMIN, NOBODY, Identity
from ..errors import GPTBuilderError

Identify = Callable[[gr.Request | None], Identity]


def local_user(_request: gr.Request | None) -> Identity:
    """`python app.py` on 127.0.0.1: the person at this machine, an admin."""
    return LOCAL_ADMIN


def from_server(request: gr.Request | None) -> Identity:
    """The caller `serve` authenticated for this request; nobody with no rights when it is missing (fail closed)."""
    raw = getattr(request, "request", None) if request is not None else None
    found = getattr(raw, "scope", {}).get(IDENTITY_SCOPE_KEY) if raw is not None else None
    return found if isinstance(found, Identity) else NOBODY


def person(identify: Identify, request: gr.Request | None, browser_owner: str) -> Identity:
    """The identity whose conversations these are: the key's, or on a store without keys this browser's."""
    who = identify(request)
    return who if who.keyed else replace(who, owner=browser_owner or "")


def ui_call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, with a gptbuilder error (a refusal included) shown in the page as a message."""
    try:
        return fn(*args)
    except GPTBuilderError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
