"""`POST /v1/moderations`: the configured moderation checks in OpenAI's wire format, for other apps to reuse.

`model` omitted (or one of OpenAI's moderation model names): the server's default (GPTBUILDER_MODERATION);
a GPT id: that GPT's own `moderation:` (else the default). OpenAI's own categories (harassment, hate, …)
are what the config's remote endpoint says (`moderation.remote`), else always false, since there is no
classifier model here; gptbuilder's categories (`blocklist`, `pattern/<name>`, `pii/<kind>`, and
`remote/unavailable` when the endpoint could not judge and on_error is block) follow them, and `findings`
says where each one is.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ..errors import ModelError, UnknownGPTError
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
    names += ["remote/unavailable"] if config.remote and config.remote.on_error == "block" else []
    return names


def _remote(moderation: Moderation, text: str) -> tuple[dict[str, bool], dict[str, float], list[dict[str, Any]]]:
    """The remote endpoint's categories and scores for the text, and its findings (none without an endpoint)."""
    if moderation.remote is None:
        return {}, {}, []
    try:
        judged = moderation.remote.judge(text)
    except ModelError as exc:
        if moderation.remote.failed(exc, text) is None:  # on_error: allow
            return {}, {}, []
        unavailable = {"check": "remote", "category": "remote/unavailable", "action": "blocked", "start": 0, "end": len(text)}
        return {"remote/unavailable": True}, {"remote/unavailable": 1.0}, [unavailable]
    categories = {str(k): v is True for k, v in judged["categories"].items()}
    scores = {str(k): float(v) for k, v in judged["category_scores"].items() if isinstance(v, int | float)}
    findings = [{"check": "remote", "category": name, "action": "blocked", "start": 0, "end": len(text)}
                for name, on in categories.items() if on]
    if judged["flagged"] and not findings:
        findings = [{"check": "remote", "category": "flagged", "action": "blocked", "start": 0, "end": len(text)}]
    return categories, scores, findings


def _result(moderation: Moderation, categories: list[str], text: str) -> dict[str, Any]:
    found = moderation.scan(text)
    hit = {_category(f) for f, _ in found}
    remote_categories, remote_scores, remote_findings = _remote(moderation, text)
    hit |= {name for name, on in remote_categories.items() if on}
    names = list(dict.fromkeys([*OPENAI_CATEGORIES, *remote_categories, *categories]))
    return {
        "flagged": bool(hit) or bool(remote_findings),
        "categories": {name: name in hit for name in names},
        "category_scores": {name: remote_scores.get(name, 1.0 if name in hit else 0.0) for name in names},
        "category_applied_input_types": {name: ["text"] if name in hit else [] for name in names},
        "findings": [
            *({"check": f.check, "category": _category(f), "action": action, "start": f.start, "end": f.end}
              for f, action in found),
            *remote_findings,
        ],
    }


async def _config(st: ServerState, model: str | None) -> tuple[str, ModerationConfig | None, bool]:
    """The name answers give, the config that checks (a GPT's, else the server's default), and whether its
    remote endpoint may be private (the GPT's allow_private_network, for its own config)."""
    if model is None or model.startswith(OPENAI_MODELS) or model == DEFAULT_MODEL:
        return DEFAULT_MODEL, await run_in_threadpool(server_default), False
    try:
        loaded = await run_in_threadpool(st.store.get, model)
    except UnknownGPTError as exc:
        hint = str(exc).removeprefix(f"unknown GPT {exc.gpt_id!r}")
        raise APIError(
            404, f"The model {model!r} does not exist{hint}; moderations take a GPT id, or no model for the server's default",
            code="model_not_found", param="model",
        ) from None
    config = await run_in_threadpool(config_for, loaded)
    return loaded.id, config, config is loaded.spec.moderation and loaded.spec.allow_private_network


@router.post("/moderations")
async def moderations(body: ModerationRequest, request: Request, _caller: Caller = Depends(authorized)) -> dict[str, Any]:
    """Check texts with the configured moderation: a result per input, in order, in OpenAI's shape."""
    st: ServerState = request.app.state.gptbuilder
    texts = body.texts(st.config.max_message_chars)
    name, config, allow_private = await _config(st, body.model)
    config = config or ModerationConfig()  # nothing configured: nothing is flagged
    # ModelError (a 5xx naming it) for a remote endpoint's key variable that is not set
    moderation = await run_in_threadpool(lambda: Moderation.from_config(config, allow_private=allow_private))
    categories = _categories(config)
    results = await run_in_threadpool(lambda: [_result(moderation, categories, text) for text in texts])
    return {"id": f"modr-{uuid.uuid4().hex[:24]}", "model": name, "results": results}
