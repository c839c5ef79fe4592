"""`create_app`: the FastAPI app behind `gptbuilder serve` — API, widget, health, metrics, and the store UI."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..access import IDENTITY_SCOPE_KEY
from ..db import Database
from ..history import DatabasePendingCalls, History
from ..store import Store
from .auth import SESSION_COOKIE, KeyChecker, is_loopback_request
from .config import ServerConfig
from .errors import APIError, install_handlers
from .metrics import Metrics
from .origins import host_allowed, same_origin
from .ratelimit import RateLimiter
from .runner import ModelQueue
from .signin import SIGNIN_PATH, signin_location
from .signing import Signer
from .state import ServerState
from .usage import UsageLedger
from .warmup import WarmUp, lazy_from_env

logger = logging.getLogger("gptbuilder.server")

# Paths anyone may call: liveness, the widget (it has its own tokens) and its script, signing in and out.
PUBLIC_PREFIXES = ("/health", "/widget", SIGNIN_PATH, "/signout")
# Where the guard reads (and caps) the body itself.
CAPPED_PREFIXES = ("/v1", "/widget", SIGNIN_PATH)

# Answered whatever the `Host`: orchestrators probe liveness by IP address, and it says nothing but "ok".
ANY_HOST_PATHS = ("/health",)
# Requests that never change anything, so another site's page may send them (CSRF needs a state change).
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def create_app(
    store: Store,
    *,
    db: Database | None = None,
    config: ServerConfig | None = None,
    history: History | None = None,
    ui: bool = False,
    warm: bool = True,
) -> FastAPI:
    """The app for ``store``: `/v1` API, `/widget…`, `/health`, `/ready`, `/metrics`, and with ``ui`` the store at `/`.

    With ``warm`` every valid GPT is loaded before /ready says ready (see warmup.py): in the background
    from the app's startup, or, in an app run without its lifespan, within the first /ready call.
    """
    config = config or ServerConfig.from_env()
    from ..moderation import server_default
    from ..moderation.logs import mask_logs

    mask_logs()  # no log line keeps a user's email or card number, whatever logging uvicorn set up
    server_default()  # a broken GPTBUILDER_MODERATION file stops the start, rather than every answer
    from ..settings import Settings

    data_dir = store.data_dir or Settings.from_env().data_dir
    if db is None:
        db = Database.for_data_dir(data_dir)
    history = history or History(db)
    queue = ModelQueue(workers=config.workers, queue_size=config.queue_size)
    limiter = RateLimiter(config.limits_storage)
    state = ServerState(
        store=store,
        config=config,
        history=history,
        ledger=UsageLedger(db, prices=config.prices, journal=data_dir / "usage-journal"),
        limiter=limiter,
        queue=queue,
        metrics=Metrics(lambda: queue.depth),
        keys=KeyChecker(config, limiter, sessions=Signer(db, "store-session-key")),
        pending=DatabasePendingCalls(db),
        warm_up=WarmUp(store) if warm else WarmUp.off(store),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.warm_up.start()  # in a thread: /health answers meanwhile, /ready says "warming"
        yield
        state.warm_up.stop()
        queue.shutdown()
        state.ledger.close()

    app = FastAPI(
        title="gptbuilder",
        version=_version(),
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.gptbuilder = state
    install_handlers(app)

    from . import admin, embeddings_api, moderations_api, openai_api, responses_api, signin, widget

    app.include_router(openai_api.router)
    app.include_router(embeddings_api.router)
    app.include_router(moderations_api.router)
    app.include_router(responses_api.router)
    app.include_router(widget.router)
    app.include_router(admin.router)
    app.include_router(signin.router)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        """Readiness: warm-up is over, the database answers and every valid GPT's agent is built (and warmed)."""
        state.caller(request)
        if state.warm_up.state == "pending":  # no lifespan ran (a test server, an embedding host): warm now
            state.warm_up.start()
            await run_in_threadpool(state.warm_up.wait)
        return await run_in_threadpool(_readiness, state, db)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus text: requests, tokens, latency, queue depth."""
        state.caller(request)
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    from .mcp import mount_mcp

    mount_mcp(app, state)  # /mcp: every GPT as an MCP tool, behind the same keys (_Guard)
    if ui:
        _mount_store_ui(app, store, history)
    app.add_middleware(_Guard, state=state)
    return app


def _readiness(state: ServerState, db: Database) -> JSONResponse:
    warm_up = state.warm_up
    if warm_up.state == "warming":
        return JSONResponse({"status": "warming", "problems": {}, "warm_up": warm_up.report()}, status_code=503)
    problems: dict[str, str] = {}
    try:
        db.create_schema()
        with db.session() as s:
            s.connection()
    except Exception as exc:  # any failure means not ready
        problems["database"] = str(exc)
    for loaded in state.store.specs():
        try:
            agent = state.store.agent(loaded.id)
        except Exception as exc:
            problems[loaded.id] = str(exc)
            continue
        if (failed := warm_up.problem(loaded.id, agent)) is not None:
            problems[loaded.id] = failed
    if warm_up.error is not None:
        problems["warm-up"] = warm_up.error
    body = {"status": "ready" if not problems else "not ready", "problems": problems, "warm_up": warm_up.report()}
    return JSONResponse(body, status_code=503 if problems else 200)


def _mount_store_ui(app: FastAPI, store: Store, history: History) -> None:
    import gradio as gr

    from ..builder import MAX_UPLOAD_BYTES
    from ..ui import STORE_CSS, build_ui, store_theme
    from ..ui.people import from_server

    blocks = build_ui(store, history=history, identify=from_server)  # each handler asks _Guard's identity
    gr.mount_gradio_app(app, blocks, path="/", theme=store_theme(), css=STORE_CSS, max_file_size=MAX_UPLOAD_BYTES)


_ASSET_PREFIXES = ("/assets/", "/static/", "/gradio_api/static/", "/custom_component/", "/favicon")
_ASSET_SUFFIXES = (".js", ".mjs", ".css", ".map", ".woff", ".woff2", ".ttf", ".svg", ".png", ".ico")


def _static_asset(scope: Scope) -> bool:
    """A GET for one of the store page's own static files (still behind the key, just not rate-limited)."""
    path: str = scope["path"]
    return scope["method"] in ("GET", "HEAD") and (path.startswith(_ASSET_PREFIXES) or path.endswith(_ASSET_SUFFIXES))


class _Guard:
    """The edge of every request: allowed `Host` (400), cross-site writes (403), CORS, body caps (413), keys.

    Host and origin rules stop DNS rebinding and CSRF: a page on another site can neither reach this
    server under its own name nor make a visitor's browser change anything here. The widget is the one
    cross-origin surface; it matches origins against each GPT's `widget.allowed_origins` itself.
    """

    def __init__(self, app: ASGIApp, *, state: ServerState):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            refusal = self._refusal(scope)
            if refusal is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008, "reason": refusal.message[:120]})
                else:
                    await refusal.response()(scope, receive, send)
                return
        if scope["type"] == "websocket":
            if self.state.config.auth_required and not scope["path"].startswith(PUBLIC_PREFIXES):
                try:
                    self.state.caller(HTTPConnection(scope))
                except APIError:
                    await send({"type": "websocket.close", "code": 1008})
                    return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith("/widget"):
            send = _without_foreign_cors(scope, send)
        if path.startswith(CAPPED_PREFIXES):
            send = self._counted(scope, send) if not path.startswith(SIGNIN_PATH) else send
            capped = await self._capped(scope, receive, send)
            if capped is None:
                return
            receive = capped
        needs_key = path in ("/v1/docs", "/v1/openapi.json") or not (
            path.startswith(("/v1", *PUBLIC_PREFIXES)) or path in ("/ready", "/metrics")  # these check in their routes
        )
        if needs_key:
            browser_page = self.state.config.auth_required and _browser_page_without_key(scope)
            if browser_page and SESSION_COOKIE not in Request(scope).cookies:
                await self._to_signin(scope, receive, send)  # no key was tried, so no failure is counted
                return
            try:
                # The store's scripts, styles and fonts (~100 files a page load) are not requests to limit.
                caller = (
                    self.state.caller(Request(scope), counted=not _static_asset(scope))
                    if self.state.config.auth_required
                    else self.state.keys.caller(Request(scope))
                )
            except APIError as exc:
                if browser_page and exc.status == 401:  # an expired session, or its key was removed
                    await self._to_signin(scope, receive, send, forget_session=True)
                else:
                    await exc.response()(scope, receive, send)
                return
            scope[IDENTITY_SCOPE_KEY] = caller.identity
        await self.app(scope, receive, send)

    async def _to_signin(self, scope: Scope, receive: Receive, send: Send, *, forget_session: bool = False) -> None:
        location = signin_location(scope["path"], scope.get("query_string", b"").decode("latin-1"))
        response = RedirectResponse(location, 303)
        if forget_session:
            response.delete_cookie(SESSION_COOKIE, path="/")
        await response(scope, receive, send)

    def _refusal(self, scope: Scope) -> APIError | None:
        """Why this request is refused before anything else runs: a foreign Host, a cross-site write, keyless admin."""
        path: str = scope["path"]
        headers = Headers(scope=scope)
        host = headers.get("host")
        if path not in ANY_HOST_PATHS and not host_allowed(host, self.state.config.allowed_hosts):
            return APIError(
                400,
                f"this server does not answer to the host {host or '(none)'!r}; the operator can allow it with "
                "`gptbuilder serve --allowed-hosts` (or GPTBUILDER_ALLOWED_HOSTS)",
                code="host_not_allowed",
            )
        if path.startswith("/widget"):
            return None  # the widget checks each GPT's allowed origins itself
        writes = scope["type"] == "websocket" or scope["method"] not in SAFE_METHODS
        if writes and _cross_site(headers):
            return APIError(
                403,
                "cross-site request refused: this server takes changes only from its own pages "
                f"(Origin {headers.get('origin') or headers.get('referer')!r} is not {host!r})",
                code="cross_site_request",
            )
        if writes and path.startswith("/gradio_api/") and not self.state.config.auth_required and not is_loopback_request(
            HTTPConnection(scope)
        ):
            return APIError(
                403,
                "this store has no API keys, so it takes changes (chats, saves, uploads) only on a loopback address; "
                "set GPTBUILDER_API_KEYS to open it to the network",
                code="keyless_store_read_only",
            )
        return None

    def _counted(self, scope: Scope, send: Send) -> Send:
        """Count the response by route template and status in the metrics."""

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                name = getattr(route, "path", None) or ("/widget" if scope["path"].startswith("/widget") else "/v1 (unmatched)")
                self.state.metrics.requests.labels(name, str(message["status"])).inc()
            await send(message)

        return counting

    async def _capped(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        limit = self.state.config.max_body_bytes
        too_large = APIError(413, f"the request body is larger than {limit:,} bytes", code="request_too_large")
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_large.response()(scope, receive, send)
            return None
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return receive
        chunks: list[bytes] = []
        size = 0
        while True:  # read the body here, so an undeclared (chunked) body is capped too
            message = await receive()
            if message["type"] == "http.disconnect":
                return _replay([message], receive)
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await too_large.response()(scope, receive, send)
                return None
            chunks.append(body)
            if not message.get("more_body"):
                break
        return _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive)


def _browser_page_without_key(scope: Scope) -> bool:
    """A browser opening a store page without a key: without a valid session it gets the sign-in page, not JSON."""
    headers = Headers(scope=scope)
    return (
        scope["method"] == "GET"
        and "text/html" in headers.get("accept", "")
        and not scope["path"].startswith(("/gradio_api", "/v1"))
        and not headers.get("authorization")
        and not headers.get("x-api-key")
    )


def _cross_site(headers: Headers) -> bool:
    """A browser names the page that sent a request: Origin (every cross-site POST), or at least Referer.

    Neither header means a tool such as curl or gradio_client, not a browser on another site.
    """
    host = headers.get("host")
    origin = headers.get("origin")
    if origin is not None:
        return not same_origin(origin, host)
    referer = headers.get("referer")
    return referer is not None and not same_origin(referer, host)


def _without_foreign_cors(scope: Scope, send: Send) -> Send:
    """Drop CORS grants to other sites' pages (Gradio reflects any Origin, with credentials, for a non-loopback Host)."""
    request_headers = Headers(scope=scope)
    origin = request_headers.get("origin")
    if origin is None or same_origin(origin, request_headers.get("host")):
        return send

    async def stripped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name in [k for k in headers if k.startswith("access-control-")]:
                del headers[name]
        await send(message)

    return stripped


def _replay(messages: list[Message], receive: Receive) -> Callable[[], Awaitable[Message]]:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()  # later: the disconnect that cancels a stream

    return replayed


def _version() -> str:
    from .. import __version__

    return __version__


def app_from_env(**options: Any) -> FastAPI:
    """The app `gptbuilder serve --workers N` runs in each worker process (settings from the environment)."""
    from ..catalog import load_catalog
    from ..settings import Settings

    settings = Settings.from_env()
    store = Store(settings.gpts_dir, data_dir=settings.data_dir, catalog=load_catalog(settings.catalog_path))
    return create_app(store, ui=True, warm=not lazy_from_env(), **options)
