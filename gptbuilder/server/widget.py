"""The website widget: `/widget.js`, the chat page `/widget/ID` and its `/widget/ID/...` routes.

`widget.js` runs on the customer's page and asks `/widget/ID/session` for a token: the browser's
Origin header must be one of the GPT's `widget.allowed_origins` (exact match), so only those pages get
a token, and the chat page's CSP `frame-ancestors` lets only them frame it. The chat page then talks
to `/widget/ID/messages` with that token; it never sees an API key.
"""

from __future__ import annotations

import html
import json
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from ..errors import GPTBuilderError
from ..events import Citation, Curated, Done, TextDelta, Transcript
from ..history import PartialAnswer, as_sent
from ..loader import LoadedSpec
from ..spec import WidgetConfig
from .auth import client_ip
from .errors import APIError, InternalError, guarded_stream
from .sanitize import render
from .schemas import RequestBody
from .state import ServerState
from .widget_sessions import TokenError, WidgetSessions

STATIC = Path(__file__).parent / "static"
ASSETS = {"frame.js": "text/javascript", "widget.css": "text/css"}
MAX_WIDGET_MESSAGE_CHARS = 4000

router = APIRouter(include_in_schema=False)


class WidgetMessage(RequestBody):
    """What the chat page sends: the visitor's message."""

    message: str = Field(min_length=1, max_length=MAX_WIDGET_MESSAGE_CHARS)


def _state(request: Request) -> ServerState:
    return request.app.state.gptbuilder


def _sessions(request: Request) -> WidgetSessions:
    st = _state(request)
    sessions = getattr(request.app.state, "widget_sessions", None)
    if sessions is None:
        sessions = WidgetSessions(st.history.db, secret=st.config.widget_secret, lifetime=st.config.widget_token_seconds)
        request.app.state.widget_sessions = sessions
    return sessions


def _widget(st: ServerState, gpt_id: str) -> tuple[LoadedSpec, WidgetConfig]:
    """The GPT and its widget settings; 404 when it has no widget (no section or no allowed origins)."""
    try:
        loaded = st.store.get(gpt_id)
    except GPTBuilderError:
        loaded = None
    widget = loaded.spec.widget if loaded is not None else None
    if loaded is None or widget is None or not widget.allowed_origins:
        raise APIError(404, f"no widget for {gpt_id!r}: the GPT needs widget.allowed_origins", code="widget_off")
    return loaded, widget


def _forbidden(message: str) -> APIError:
    return APIError(403, message, code="widget_forbidden")


def _is_own_origin(request: Request, origin: str) -> bool:
    """The chat page's own requests: same host and port (a TLS proxy in front may hide the scheme)."""
    return origin.partition("://")[2] == request.headers.get("host", "")


def _check_origin(request: Request, widget: WidgetConfig, *, own_page_ok: bool) -> str | None:
    """The request's Origin if allowed (exact match); the chat page's own origin is fine for its messages."""
    origin = request.headers.get("origin")
    if origin is None:
        return None
    if origin in widget.allowed_origins or (own_page_ok and _is_own_origin(request, origin)):
        return origin
    raise _forbidden(f"the origin {origin} may not use this widget")


def _cors(origin: str | None, widget: WidgetConfig) -> dict[str, str]:
    if origin is None or origin not in widget.allowed_origins:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}  # exact origin, never "*", no credentials


@router.get("/widget.js")
def widget_script() -> FileResponse:
    """The loader customers put on their page: a launcher bubble that opens the chat in an iframe."""
    return FileResponse(STATIC / "widget.js", media_type="text/javascript", headers={"Cache-Control": "public, max-age=300"})


@router.get("/widget/assets/{name}")
def widget_asset(name: str) -> FileResponse:
    """The chat page's own script and style (no third-party assets)."""
    if name not in ASSETS:
        raise APIError(404, f"no widget asset {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=300"})


@router.options("/widget/{gpt_id}/session")
@router.options("/widget/{gpt_id}/messages")
def widget_preflight(gpt_id: str, request: Request) -> Response:
    """CORS preflight: allowed origins only."""
    _loaded, widget = _widget(_state(request), gpt_id)
    origin = _check_origin(request, widget, own_page_ok=True)
    headers = _cors(origin, widget)
    if headers:
        headers |= {
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type, Authorization",
            "Access-Control-Max-Age": "600",
        }
    return Response(status_code=204, headers=headers)


@router.post("/widget/{gpt_id}/session")
async def widget_session(gpt_id: str, request: Request) -> JSONResponse:
    """A short-lived token for this GPT and the calling page's origin, with the widget's look."""
    st = _state(request)
    loaded, widget = await run_in_threadpool(_widget, st, gpt_id)
    origin = request.headers.get("origin")
    if origin is None or origin not in widget.allowed_origins:
        raise _forbidden(f"the origin {origin or '(none)'} may not embed this widget")
    st.limiter.hit("widget IP", client_ip(request), st.config.widget_messages_per_minute_per_ip * 2)
    sessions = _sessions(request)
    session_id = sessions.new_id()  # the visitor's identity: random, so nobody can name it to list their chats
    conversation = await run_in_threadpool(st.history.start, loaded.id, channel="widget", owner=f"widget:{session_id}")
    token, grant = await run_in_threadpool(sessions.issue, loaded.id, origin, conversation.id, session_id)
    body = {"token": token, "expires_at": grant.expires, "config": _public_config(loaded, widget)}
    return JSONResponse(body, headers=_cors(origin, widget))


def _public_config(loaded: LoadedSpec, widget: WidgetConfig) -> dict[str, Any]:
    return {
        "id": loaded.id,
        "title": widget.title or loaded.spec.name,
        "greeting": widget.greeting,
        "color": widget.color,
        "position": widget.position,
        "theme": widget.theme,
        "avatar": _emoji(widget.avatar) or _emoji(loaded.spec.avatar),
        "placeholder": widget.placeholder or "Type a message…",
        "open_on_load": widget.open_on_load,
        "starters": list(loaded.spec.conversation_starters),
    }


def _emoji(avatar: str | None) -> str | None:
    """An emoji avatar; image avatars are not shown (the chat page loads nothing from elsewhere)."""
    return avatar if avatar and len(avatar) <= 8 and "/" not in avatar and "." not in avatar else None


@router.get("/widget/{gpt_id}")
def widget_page(gpt_id: str, request: Request) -> HTMLResponse:
    """The chat page shown in the iframe; only the allowed origins may frame it."""
    loaded, widget = _widget(_state(request), gpt_id)
    config = json.dumps(_public_config(loaded, widget)).replace("<", "\\u003c")
    page = _PAGE.format(title=html.escape(widget.title or loaded.spec.name), config=config, lang="en")
    ancestors = " ".join(widget.allowed_origins)
    csp = (
        f"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        f"base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    )
    headers = {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(page, headers=headers)


_PAGE = """<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="assets/widget.css">
</head>
<body>
<script type="application/json" id="gptbuilder-config">{config}</script>
<main id="chat" aria-live="polite"></main>
<script src="assets/frame.js"></script>
</body>
</html>
"""


@router.post("/widget/{gpt_id}/messages")
async def widget_message(gpt_id: str, body: WidgetMessage, request: Request) -> Any:
    """One visitor message; the answer streams back as sanitized HTML snapshots, then citations."""
    st = _state(request)
    loaded, widget = await run_in_threadpool(_widget, st, gpt_id)
    origin = _check_origin(request, widget, own_page_ok=True)
    header = request.headers.get("authorization", "")
    sessions = _sessions(request)
    try:
        grant = await run_in_threadpool(sessions.verify, header.removeprefix("Bearer ").strip() or None, loaded.id)
        if grant.origin not in widget.allowed_origins:
            raise TokenError("this widget's page origin is no longer allowed")
        st.limiter.hit("widget IP", client_ip(request), st.config.widget_messages_per_minute_per_ip)
        conversation_id = await run_in_threadpool(sessions.count_message, grant, st.config.widget_messages_per_session)
    except TokenError as exc:
        raise _forbidden(str(exc)) from None
    except OverflowError as exc:
        raise APIError(429, str(exc), code="session_limit", headers={"Retry-After": "3600"}) from None
    history = st.history
    sent = await run_in_threadpool(history.add, conversation_id, "user", body.message)
    stored = as_sent(await run_in_threadpool(history.messages, conversation_id), sent, body.message)  # stored masked
    messages = [{"role": m.role, "content": m.content} for m in stored if m.role in ("user", "assistant") and m.content]
    agent = await st.agent(loaded.id)
    st.check_messages(messages)
    events = await st.generate(agent, messages, {"owner": f"widget:{conversation_id}", "pending": st.pending})
    transcript = Transcript()
    # Written as it streams (see PartialAnswer): a server killed mid-answer leaves what was shown, marked unfinished.
    row = await run_in_threadpool(history.add, conversation_id, "assistant", "", streaming=True)
    partial = PartialAnswer(history, row.id)

    async def answer() -> AsyncGenerator[ServerSentEvent, None]:
        try:
            async for event in events:
                transcript.add(event)
                match event:
                    case TextDelta():
                        await run_in_threadpool(partial.grew, transcript.text)
                        yield ServerSentEvent(json.dumps({"type": "delta", "html": render(transcript.text)}))
                    case Curated():
                        yield ServerSentEvent(json.dumps({"type": "curated", "question": event.question}))
                    case Done():
                        st.account(f"widget:{grant.origin}"[:64], agent, event)  # booked to the embedding site
        finally:
            await events.aclose()
        citations = [_citation(c) for c in transcript.citations]
        if citations:
            yield ServerSentEvent(json.dumps({"type": "citations", "citations": citations}))
        yield ServerSentEvent(json.dumps({"type": "done", "html": render(transcript.text)}))
        await run_in_threadpool(history.update, row.id, transcript.text, citations=citations, streaming=False)

    async def failed(error: APIError) -> AsyncIterator[ServerSentEvent]:
        message = "something went wrong; try again" if isinstance(error, InternalError) else error.message
        yield ServerSentEvent(json.dumps({"type": "error", "message": message}))
        await run_in_threadpool(history.update, row.id, transcript.text, error=message, streaming=False)

    return EventSourceResponse(guarded_stream(answer(), failed), ping=st.config.keepalive_seconds, headers=_cors(origin, widget))


def _citation(event: Citation) -> dict[str, Any]:
    """What the chat page shows of a source (a short excerpt)."""
    return {"number": event.number, "source": event.source, "text": event.text[:500], "cited": event.cited}
