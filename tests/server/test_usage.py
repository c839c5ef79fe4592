"""Usage accounting: atomic per key/GPT/day counters, prices, and the /v1/usage views."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import date

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from gptbuilder.db import Database
from gptbuilder.errors import DatabaseError
from gptbuilder.events import Usage
from gptbuilder.server import ServerConfig
from gptbuilder.server.auth import key_id
from gptbuilder.server.config import Price
from gptbuilder.server.usage import UsageLedger
from tests.server.conftest import ECHO
from tests.server.serve_process import ServeProcess


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


# ----- the journal: counts survive a process that dies before its sums are written --------------------------

DYING = """
import os, sys
from pathlib import Path
from gptbuilder.db import Database
from gptbuilder.events import Usage
from gptbuilder.server.usage import UsageLedger

data = Path(sys.argv[1])
ledger = UsageLedger(Database.for_data_dir(data), flush_seconds=3600, journal=data / "usage-journal")
for _ in range(int(sys.argv[2])):
    ledger.add("key_k", "echo", Usage(10, 3))
if sys.argv[3] == "flush":
    ledger.flush()
    for _ in range(2):
        ledger.add("key_k", "echo", Usage(1, 1))
os._exit(0)  # as kill -9 would: no close, no flush, no atexit
"""


def die_after(data, adds: int, flush: bool = False) -> None:
    """Run a process that counts ``adds`` requests (flushing once when asked, then counting 2 more) and dies."""
    done = subprocess.run([sys.executable, "-c", DYING, str(data), str(adds), "flush" if flush else "-"], timeout=120)
    assert done.returncode == 0


def totals(ledger: UsageLedger) -> tuple[int, int, int]:
    [line] = ledger.lines(key_id="key_k")
    return line.requests, line.prompt_tokens, line.completion_tokens


def test_a_process_that_dies_before_flushing_loses_no_count(tmp_path):
    data = tmp_path / "data"
    die_after(data, 5)
    db = Database.for_data_dir(data)
    ledger = UsageLedger(db, journal=data / "usage-journal")
    assert totals(ledger) == (5, 50, 15)
    assert [p.name for p in (data / "usage-journal").iterdir()] == [ledger._journal.name]  # the orphan is gone
    ledger.close()
    assert list((data / "usage-journal").iterdir()) == []
    assert UsageLedger(db, journal=data / "usage-journal").replay() == 0  # counted once, not again
    db.dispose()


def test_what_was_written_before_the_crash_is_not_counted_twice(tmp_path):
    data = tmp_path / "data"
    die_after(data, 3, flush=True)  # 3 written with their journal offset, 2 more only journaled
    db = Database.for_data_dir(data)
    ledger = UsageLedger(db, journal=data / "usage-journal")
    assert totals(ledger) == (5, 32, 11)
    ledger.close()
    db.dispose()


def test_a_line_cut_by_the_crash_is_not_counted(tmp_path, db):
    folder = tmp_path / "data" / "usage-journal"
    folder.mkdir(parents=True)
    (folder / "dead-1-x.jsonl").write_text('["2026-01-01", "key_k", "echo", 4, 2]\n["2026-01-01", "key_k", "ec', encoding="utf-8")
    ledger = UsageLedger(db, journal=folder)
    assert totals(ledger) == (1, 4, 2)
    ledger.close()


def test_a_living_processes_journal_is_not_replayed(tmp_path, db):
    folder = tmp_path / "journal"
    first = UsageLedger(db, flush_seconds=3600, journal=folder)
    first.add("key_k", "echo", Usage(1, 1))
    second = UsageLedger(db, journal=folder)  # holds no lock on the first's journal: it is alive
    assert second.replay() == 0
    first.close()
    assert totals(second) == (1, 1, 1)
    second.close()


def test_long_journals_are_rotated_and_deleted_once_written(tmp_path, db, monkeypatch):
    monkeypatch.setattr("gptbuilder.server.usage.ROTATE_BYTES", 200)
    folder = tmp_path / "journal"
    ledger = UsageLedger(db, flush_seconds=3600, journal=folder)
    for _ in range(4):
        for _ in range(5):
            ledger.add("key_k", "echo", Usage(2, 1))
        ledger.flush()
    assert len(list(folder.iterdir())) == 1 and totals(ledger) == (20, 40, 20)
    with db.engine.connect() as connection:
        marks = connection.execute(text("select name from api_usage_journal")).all()
    assert [row[0] for row in marks] == [ledger._journal.name]
    ledger.close()


def test_a_journal_kept_when_the_database_is_away_at_close_is_replayed_later(tmp_path, db, monkeypatch):
    folder = tmp_path / "journal"
    ledger = UsageLedger(db, flush_seconds=3600, journal=folder)
    ledger.add("key_k", "echo", Usage(7, 7))

    def away(*_args, **_kwargs):
        raise DatabaseError("database error: OperationalError: connection refused")

    monkeypatch.setattr(ledger, "_write", away)
    with pytest.raises(DatabaseError):
        ledger.close()
    monkeypatch.undo()
    assert len(list(folder.iterdir())) == 1
    assert totals(UsageLedger(db, journal=folder)) == (1, 7, 7)


def test_serve_killed_right_after_answering_books_every_request(write_spec, gpts_dir, tmp_path):
    """kill -9 of `gptbuilder serve` within a second of five answers, then a restart: all five are booked."""
    write_spec("echo", ECHO)
    serve = ServeProcess(gpts_dir, tmp_path / "serve-data").start()
    try:
        for n in range(5):
            answer = httpx.post(f"{serve.url}/v1/chat/completions", timeout=30,
                                json={"model": "echo", "messages": [{"role": "user", "content": f"hi {n}"}]})
            assert answer.status_code == 200
    finally:
        serve.kill()
    serve.start()
    try:
        usage = httpx.get(f"{serve.url}/v1/usage", timeout=30).json()
    finally:
        serve.stop()
    assert usage["total"]["requests"] == 5, usage


def test_usage_waits_out_a_database_outage_and_says_so_once(tmp_path, db, monkeypatch, caplog):
    monkeypatch.setattr("gptbuilder.server.usage.MAX_RETRY_SECONDS", 0.2)
    ledger = UsageLedger(db, flush_seconds=0.05, journal=tmp_path / "journal")
    real_session, down = db.session, threading.Event()
    down.set()

    def session():
        if down.is_set():
            raise DatabaseError("database error: OperationalError: connection refused")
        return real_session()

    monkeypatch.setattr(db, "session", session)
    for _ in range(3):
        ledger.add("key_k", "echo", Usage(5, 1))
    time.sleep(1.0)  # several failed rounds
    down.clear()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "usage written again" not in caplog.text:
        time.sleep(0.05)
    assert totals(ledger) == (3, 15, 3)
    errors = [r for r in caplog.records if "could not write usage" in r.getMessage()]
    assert len(errors) == 1 and errors[0].exc_info is None  # one line, not a traceback a second
    assert "usage written again after" in caplog.text
    ledger.close()


def test_a_journal_that_cannot_be_written_still_counts_the_request(tmp_path, db, monkeypatch, caplog):
    ledger = UsageLedger(db, flush_seconds=3600, journal=tmp_path / "journal")

    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ledger._journal, "append", full)
    ledger.add("key_k", "echo", Usage(2, 2))
    assert "could not journal usage" in caplog.text
    assert totals(ledger) == (1, 2, 2)
    ledger.close()
