"""Server fixtures: an app over the test's GPTs folder, and the same app live on a loopback port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import openai
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import Field

from gptbuilder.db import Database
from gptbuilder.models.fake import FakeChatModel
from gptbuilder.server import ServerConfig, create_app
from gptbuilder.server.origins import LOOPBACK_HOSTS
from gptbuilder.store import Store
from tests.test_agent_tools import orders  # noqa: F401 - the demo orders service, as a fixture

ECHO = """
name: Echo
description: Repeats what you say.
instructions: Be brief.
conversation_starters: ["Say hello"]
model: {provider: fake}
"""


@pytest.fixture
def make_app(gpts_dir: Path, tmp_path: Path) -> Callable[..., FastAPI]:
    """Build the app for this test's GPTs folder (database: the test's, SQLite or the CI's PostgreSQL)."""
    apps: list[FastAPI] = []

    def make(config: ServerConfig | None = None, *, model_factory: Callable[..., object] | None = None, **options: object) -> FastAPI:
        store = Store(gpts_dir, data_dir=tmp_path / "data", model_factory=model_factory)
        db = Database.for_data_dir(tmp_path / "data")
        config = config or ServerConfig()
        if config.allowed_hosts == LOOPBACK_HOSTS:  # TestClient sends `Host: testserver`
            config = replace(config, allowed_hosts=(*LOOPBACK_HOSTS, "testserver"))
        app = create_app(store, db=db, config=config, **options)
        app.state.test_db = db
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.gptbuilder.queue.shutdown()
        app.state.gptbuilder.ledger.close()
        app.state.test_db.dispose()


class LiveServer:
    """A uvicorn server running an app in a thread on a free loopback port."""

    def __init__(self, app: FastAPI):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.sock = sock
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                                    # a client still streaming (gradio_client's heartbeat) is cut at
                                                    # teardown, not waited for
                                                    timeout_graceful_shutdown=0.1))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def live() -> Iterator[Callable[[FastAPI], LiveServer]]:
    """Start apps on loopback ports; every one is stopped after the test."""
    servers: list[LiveServer] = []

    def start(app: FastAPI) -> LiveServer:
        server = LiveServer(app)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class SlowFake(FakeChatModel):
    """The fake model, pausing before each streamed piece and counting the pieces it produced."""

    delay: float = 0.02
    produced: list[int] = Field(default_factory=lambda: [0])

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Iterator[Any]:
        for chunk in super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs):
            time.sleep(self.delay)
            self.produced[0] += 1
            yield chunk


def slow_factory(model: SlowFake) -> Callable[..., object]:
    """A Store model factory that always answers with ``model``."""
    return lambda _config, base_dir=None: model


@pytest.fixture
def cancelling_acme(write_spec, make_app, live, orders) -> str:
    """A live server whose `acme` GPT cancels order A1002 through the demo orders action (which needs approval); its URL."""
    cancel = json.dumps({"type": "tool_call", "name": "cancelOrder", "arguments": {"order_id": "A1002"}})
    write_spec(
        "acme",
        "name: Acme\ninstructions: Use the tools.\nallow_private_network: true\n"
        f"model:\n  provider: fake\n  options:\n    replies: [{json.dumps(cancel)}, 'Order A1002 is cancelled.']\n"
        "tools:\n  - action: {openapi: actions/orders.openapi.yaml}\n",
    )
    return live(make_app(ServerConfig())).url


@pytest.fixture
def citing_acme(write_spec, make_app, live, gpts_dir) -> openai.OpenAI:
    """The openai client of a live server whose `acme` GPT answers "30 days [1]." from a returns policy file."""
    (gpts_dir / "kb").mkdir()
    (gpts_dir / "kb" / "returns.md").write_text("# Returns\nShoes can be returned within 30 days.\n", encoding="utf-8")
    write_spec("acme", "name: Acme\ninstructions: x\nmodel: {provider: fake, options: {replies: ['30 days [1].']}}\n"
                       "knowledge: {files: [kb/*.md], embedding_model: fake}\n")
    server = live(make_app(ServerConfig()))
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


@pytest.fixture
def echo(write_spec) -> Path:
    """A fake-model GPT that echoes the last message."""
    return write_spec("echo", ECHO)


@pytest.fixture(autouse=True)
def _no_server_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own keys, prices or widget secret never leak into a test."""
    for name in ("GPTBUILDER_API_KEYS", "GPTBUILDER_API_KEYS_FILE", "GPTBUILDER_ADMIN_API_KEYS", "GPTBUILDER_WIDGET_SECRET",
                 "GPTBUILDER_PRICES_FILE"):
        monkeypatch.delenv(name, raising=False)
