"""Usage accounting: atomic per key/GPT/day counters, prices, and the /v1/usage views."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from gptbuilder.db import Database
from gptbuilder.events import Usage
from gptbuilder.server import ServerConfig
from gptbuilder.server.auth import key_id
from gptbuilder.server.config import Price
from gptbuilder.server.usage import UsageLedger


@pytest.fixture
def db(tmp_path):
    database = Database.for_data_dir(tmp_path / "data")
    yield database
    database.dispose()


def test_record_adds_up_per_key_gpt_and_day(db):
    ledger = UsageLedger(db, prices={"echo": Price(prompt_per_1k=1.0, completion_per_1k=2.0)})
    ledger.record("key_a", "echo", Usage(100, 10), day=date(2026, 1, 1))
    ledger.record("key_a", "echo", Usage(400, 40), day=date(2026, 1, 1))
    ledger.record("key_a", "echo", Usage(1, 1), day=date(2026, 1, 2))
    ledger.record("key_b", "other", Usage(5, 5), day=date(2026, 1, 1))
    lines = ledger.lines(key_id="key_a")
    assert [(row.day.day, row.requests, row.prompt_tokens, row.completion_tokens) for row in lines] == [(2, 1, 1, 1), (1, 2, 500, 50)]
    assert lines[1].cost == pytest.approx(0.5 + 0.1)
    assert [row.cost for row in ledger.lines(key_id="key_b")] == [None]
    assert len(ledger.lines()) == 3
    assert [row.day.day for row in ledger.lines(start=date(2026, 1, 2))] == [2]


def test_concurrent_records_lose_nothing(db):
    ledger = UsageLedger(db)

    def work():
        for _ in range(10):
            ledger.record("key_c", "echo", Usage(2, 1))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [line] = ledger.lines(key_id="key_c")
    assert (line.requests, line.prompt_tokens, line.completion_tokens) == (40, 80, 40)


def test_buffered_adds_are_written_by_the_background_writer(db):
    ledger = UsageLedger(db, flush_seconds=0.05)
    db.create_schema()
    for _ in range(5):
        ledger.add("key_d", "echo", Usage(3, 2))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with db.engine.connect() as connection:
            written = connection.execute(text("select requests, prompt_tokens, completion_tokens from api_usage")).all()
        if written:
            break
        time.sleep(0.05)
    assert [tuple(row) for row in written] == [(5, 15, 10)]
    ledger.add("key_d", "echo", Usage(1, 1))
    assert ledger.lines(key_id="key_d")[0].requests == 6  # reading writes what is buffered first
    ledger.close()


def test_usage_views_and_no_key_stored(make_app, echo):
    config = ServerConfig(api_keys=("sk-user",), admin_keys=("sk-admin",), prices={"*": Price(completion_per_1k=1000)})
    client = TestClient(make_app(config))
    user, admin = {"Authorization": "Bearer sk-user"}, {"Authorization": "Bearer sk-admin"}
    client.post("/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]}, headers=user)
    mine = client.get("/v1/usage", headers=user).json()
    assert mine["key_id"] == key_id("sk-user")
    assert mine["total"]["requests"] == 1 and mine["total"]["estimated_cost"] == pytest.approx(3.0)
    assert client.get("/v1/usage?all=true", headers=user).status_code == 403
    assert client.get("/v1/usage", headers=admin).json()["data"] == []
    everyone = client.get("/v1/usage?all=true", headers=admin).json()["data"]
    assert [line["key_id"] for line in everyone] == [key_id("sk-user")]
    assert client.get("/v1/usage?start=yesterday", headers=user).status_code == 400
    with client.app.state.test_db.engine.connect() as connection:
        rows = connection.execute(text("select key_id from api_usage")).all()
    assert rows and all("sk-user" not in row[0] for row in rows)
