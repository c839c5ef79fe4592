"""`POST /v1/moderations`: the configured moderation checks in OpenAI's wire format, for other apps to reuse.

`model` omitted (or one of OpenAI's moderation model names): the server's default (GPTBUILDER_MODERATION);
a GPT id: that GPT's own `moderation:` (else the default). There is no classifier model yet, so OpenAI's
own categories (harassment, hate, …) are always false; gptbuilder's categories (`blocklist`,
`pattern/<name>`, `pii/<kind>`) follow them, and `findings` says where each one is.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ..errors import UnknownGPTError
from ..moderation import Moderation, Verdict, config_for, server_default
from ..moderation.pii import KINDS
from ..spec import ModerationConfig
from .auth import Caller
from .errors import APIError
from .openai_api import authorized
from .schemas import RequestBody
from .state import ServerState

router = APIRouter(prefix="/v1")

MAX_INPUTS = 256
DEFAULT_MODEL = "gptbuilder-moderation"  # the name answers give when the server's default checked them
OPENAI_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent", "self-harm",
    "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence", "violence/graphic",
)
OPENAI_MODELS = ("omni-moderation", "text-moderation")  # prefixes of OpenAI's own model names


class ModerationRequest(RequestBody):
    """`POST /v1/moderations`."""

    input: Any = Field(description="A text or a list of texts")
    model: str | None = Field(None, min_length=1, max_length=200)

    def texts(self, max_chars: int) -> list[str]:
        """The inputs as texts; 400 naming `input` for an empty list, too many, a text too long or anything but text."""
        if not isinstance(self.input, str | list):
            raise APIError(400, "input must be a text or a list of texts", param="input")
        items = [self.input] if isinstance(self.input, str) else self.input
        if not items:
            raise APIError(400, "input is empty; send a text or a list of texts", param="input")
        if len(items) > MAX_INPUTS:
            raise APIError(400, f"{len(items):,} inputs sent; at most {MAX_INPUTS:,} per request", param="input",
                           code="too_many_inputs")
        for index, item in enumerate(items):
            where = "input" if isinstance(self.input, str) else f"input[{index}]"
            if not isinstance(item, str):
                raise APIError(400, f"{where} is not text; only text is moderated here (no images)", param=where)
            if len(item) > max_chars:
                raise APIError(400, f"{where} is {len(item):,} characters; at most {max_chars:,} are accepted", param=where,
                               code="input_too_long")
        return items


def _category(found: Verdict) -> str:
    return {"blocklist": "blocklist", "regex": f"pattern/{found.category}", "pii": f"pii/{found.category}"}[found.check]


def _categories(config: ModerationConfig) -> list[str]:
    """gptbuilder's categories a config checks, in a fixed order."""
    names = ["blocklist"] if config.blocklist else []
    names += [f"pattern/{name}" for name in config.patterns]
    names += [f"pii/{kind}" for kind in KINDS] if config.pii != "off" else []
    return names


def _result(moderation: Moderation, categories: list[str], text: str) -> dict[str, Any]:
    found = moderation.scan(text)
    hit = {_category(f) for f, _ in found}
    names = [*OPENAI_CATEGORIES, *categories]
    return {
        "flagged": bool(hit),
        "categories": {name: name in hit for name in names},
        "category_scores": {name: 1.0 if name in hit else 0.0 for name in names},
        "category_applied_input_types": {name: ["text"] if name in hit else [] for name in names},
        "findings": [
            {"check": f.check, "category": _category(f), "action": action, "start": f.start, "end": f.end} for f, action in found
        ],
    }


async def _config(st: ServerState, model: str | None) -> tuple[str, ModerationConfig | None]:
    """The name answers give and the config that checks: a GPT's, else the server's default."""
    if model is None or model.startswith(OPENAI_MODELS) or model == DEFAULT_MODEL:
        return DEFAULT_MODEL, await run_in_threadpool(server_default)
    try:
        loaded = await run_in_threadpool(st.store.get, model)
    except UnknownGPTError as exc:
        hint = str(exc).removeprefix(f"unknown GPT {exc.gpt_id!r}")
        raise APIError(
            404, f"The model {model!r} does not exist{hint}; moderations take a GPT id, or no model for the server's default",
            code="model_not_found", param="model",
        ) from None
    return loaded.id, await run_in_threadpool(config_for, loaded)


@router.post("/moderations")
async def moderations(body: ModerationRequest, request: Request, _caller: Caller = Depends(authorized)) -> dict[str, Any]:
    """Check texts with the configured moderation: a result per input, in order, in OpenAI's shape."""
    st: ServerState = request.app.state.gptbuilder
    texts = body.texts(st.config.max_message_chars)
    name, config = await _config(st, body.model)
    config = config or ModerationConfig()  # nothing configured: nothing is flagged
    moderation = Moderation.from_config(config)
    categories = _categories(config)
    results = await run_in_threadpool(lambda: [_result(moderation, categories, text) for text in texts])
    return {"id": f"modr-{uuid.uuid4().hex[:24]}", "model": name, "results": results}
