"""PostgreSQL stopped and restarted under a live server: answers go on, /ready says why not, usage is kept.

Issue 17: the database may go away at start or mid-run. The server must say so (not crash or loop), and the
usage counted meanwhile must reach the database once it is back, not be dropped.
"""

from __future__ import annotations

import time

import httpx
import pytest

from gptbuilder.server import ServerConfig
from tests.postgres import Postgres
from tests.server.conftest import ECHO, live, make_app  # noqa: F401 - fixtures


@pytest.fixture
def postgres(monkeypatch):
    """A PostgreSQL server of this test's own, running, named by GPTBUILDER_DATABASE_URL."""
    server = Postgres()
    server.start()
    monkeypatch.setenv("GPTBUILDER_DATABASE_URL", server.url)
    yield server
    server.remove()


def chat(url: str, text: str) -> int:
    body = {"model": "echo", "messages": [{"role": "user", "content": text}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).status_code


def test_postgres_stopped_and_restarted_mid_run_loses_no_usage(postgres, write_spec, make_app, live):
    write_spec("echo", ECHO)
    server = live(make_app(ServerConfig()))
    assert httpx.get(f"{server.url}/ready", timeout=30).status_code == 200
    assert [chat(server.url, "before") for _ in range(2)] == [200, 200]
    assert httpx.get(f"{server.url}/v1/usage", timeout=30).json()["total"]["requests"] == 2

    postgres.stop()
    assert [chat(server.url, "during") for _ in range(3)] == [200, 200, 200]  # answers need no database
    ready = httpx.get(f"{server.url}/ready", timeout=30)
    assert ready.status_code == 503 and "database" in ready.json()["problems"]
    usage = httpx.get(f"{server.url}/v1/usage", timeout=30)
    assert usage.status_code == 503 and usage.json()["error"]["code"] == "database_unavailable"  # no made-up totals

    postgres.start()
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/ready", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "not ready after the database came back"
        time.sleep(0.2)
    assert httpx.get(f"{server.url}/v1/usage", timeout=30).json()["total"]["requests"] == 5


def test_postgres_down_at_start_then_up(postgres, write_spec, make_app, live):
    postgres.stop()
    write_spec("echo", ECHO)
    server = live(make_app(ServerConfig()))
    ready = httpx.get(f"{server.url}/ready", timeout=30)
    assert ready.status_code == 503 and "cannot prepare the database" in ready.json()["problems"]["database"]
    assert chat(server.url, "while down") == 200
    postgres.start()
    assert httpx.get(f"{server.url}/ready", timeout=30).status_code == 200
    assert httpx.get(f"{server.url}/v1/usage", timeout=30).json()["total"]["requests"] == 1
