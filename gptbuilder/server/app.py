"""`create_app`: the FastAPI app behind `gptbuilder serve` — API, widget, health, metrics, and the store UI."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..db import Database
from ..history import DatabasePendingCalls, History
from ..store import Store
from .auth import KeyChecker
from .config import ServerConfig
from .errors import APIError, install_handlers
from .metrics import Metrics
from .ratelimit import RateLimiter
from .runner import ModelQueue
from .state import ServerState
from .usage import UsageLedger

logger = logging.getLogger("gptbuilder.server")

# Paths anyone may call: liveness, the widget (it has its own tokens) and its script.
PUBLIC_PREFIXES = ("/health", "/widget")


def create_app(
    store: Store,
    *,
    db: Database | None = None,
    config: ServerConfig | None = None,
    history: History | None = None,
    ui: bool = False,
) -> FastAPI:
    """The app for ``store``: `/v1` API, `/widget…`, `/health`, `/ready`, `/metrics`, and with ``ui`` the store at `/`."""
    config = config or ServerConfig.from_env()
    if db is None:
        from ..settings import Settings

        db = Database.for_data_dir(store.data_dir or Settings.from_env().data_dir)
    history = history or History(db)
    queue = ModelQueue(workers=config.workers, queue_size=config.queue_size)
    state = ServerState(
        store=store,
        config=config,
        history=history,
        ledger=UsageLedger(db, prices=config.prices),
        limiter=RateLimiter(config.limits_storage),
        queue=queue,
        metrics=Metrics(lambda: queue.depth),
        keys=KeyChecker(config),
        pending=DatabasePendingCalls(db),
    )
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
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

    from . import admin, openai_api, widget

    app.include_router(openai_api.router)
    app.include_router(widget.router)
    app.include_router(admin.router)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        """Readiness: the database answers and every valid GPT's model can be built."""
        state.caller(request)
        return await run_in_threadpool(_readiness, state, db)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus text: requests, tokens, latency, queue depth."""
        state.caller(request)
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    if ui:
        _mount_store_ui(app, store, history)
    app.add_middleware(_Guard, state=state)
    return app


def _readiness(state: ServerState, db: Database) -> JSONResponse:
    problems: dict[str, str] = {}
    try:
        db.create_schema()
        with db.session() as s:
            s.connection()
    except Exception as exc:  # any failure means not ready
        problems["database"] = str(exc)
    for loaded in state.store.specs():
        try:
            state.store.agent(loaded.id)
        except Exception as exc:
            problems[loaded.id] = str(exc)
    status = 503 if problems else 200
    return JSONResponse({"status": "ready" if not problems else "not ready", "problems": problems}, status_code=status)


def _mount_store_ui(app: FastAPI, store: Store, history: History) -> None:
    import gradio as gr

    from ..builder import MAX_UPLOAD_BYTES
    from ..ui import STORE_CSS, build_ui, store_theme

    gr.mount_gradio_app(
        app, build_ui(store, history=history), path="/", theme=store_theme(), css=STORE_CSS, max_file_size=MAX_UPLOAD_BYTES
    )


class _Guard:
    """Caps request bodies on the API and widget (413), and asks for a key on the store pages and their assets."""

    def __init__(self, app: ASGIApp, *, state: ServerState):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
        if path.startswith(("/v1", "/widget")):
            send = self._counted(scope, send)
            capped = await self._capped(scope, receive, send)
            if capped is None:
                return
            receive = capped
        needs_key = path in ("/v1/docs", "/v1/openapi.json") or not (
            path.startswith(("/v1", *PUBLIC_PREFIXES)) or path in ("/ready", "/metrics")  # these check in their routes
        )
        if needs_key and self.state.config.auth_required:
            try:
                self.state.caller(Request(scope))
            except APIError as exc:
                await exc.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)

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
    return create_app(store, ui=True, **options)
