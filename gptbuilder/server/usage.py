"""Usage accounting: requests and tokens per API key id, per GPT, per day, shared by every replica."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Date, Integer, String, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..db import Base, Database
from ..errors import DatabaseError
from ..events import Usage
from .config import Price
from .usage_journal import Sums, UsageJournal, orphans

logger = logging.getLogger("gptbuilder.server")


class UsageRow(Base):
    __tablename__ = "api_usage"
    __table_args__ = (UniqueConstraint("day", "key_id", "gpt_id", name="one_usage_row_per_key_gpt_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    key_id: Mapped[str] = mapped_column(String(64), index=True)  # key_<sha256 prefix>, never the key
    gpt_id: Mapped[str] = mapped_column(String(100), index=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)


@dataclass(frozen=True)
class UsageLine:
    """One day of one key's use of one GPT, with its estimated cost when a price is known."""

    day: date
    key_id: str
    gpt_id: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "date": self.day.isoformat(),
            "key_id": self.key_id,
            "model": self.gpt_id,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "estimated_cost": self.cost,
        }


class UsageJournalRow(Base):
    """How far into one process's usage journal the usage rows reach (see usage_journal.py)."""

    __tablename__ = "api_usage_journal"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    applied: Mapped[int] = mapped_column(Integer, default=0)  # bytes of the journal already in api_usage


MAX_RETRY_SECONDS = 30.0  # the longest wait between tries to write usage while the database is away
# A journal this long starts a successor at the next flush, and is deleted once its sums are written.
ROTATE_BYTES = 1 << 20


class UsageLedger:
    """Adds to and reads the usage table; increments are atomic, so replicas can count side by side.

    `add` only buffers (a database commit per request would cost more than the request); a background
    thread writes the sums every ``flush_seconds``, and `lines` and `close` write them first. With a
    ``journal`` folder each count is also appended to this process's journal first, and journals left by
    processes that died before writing their sums are replayed, so a crash loses no request.
    """

    def __init__(
        self,
        db: Database,
        *,
        prices: dict[str, Price] | None = None,
        flush_seconds: float = 1.0,
        journal: Path | None = None,
    ):
        self.db = db
        self.prices = prices or {}
        self.flush_seconds = flush_seconds
        self._pending: Sums = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._journal_dir = journal
        self._journal = UsageJournal(journal) if journal is not None else None
        self._retired: list[UsageJournal] = []  # rotated out; deleted once their sums are written
        self._replay_due = journal is not None
        if journal is not None:
            self._replay_quietly()

    def add(self, key_id: str, gpt_id: str, usage: Usage) -> None:
        """Count one request and its tokens soon (buffered; journaled first when the ledger keeps a journal)."""
        key = (datetime.now(UTC).date(), key_id, gpt_id)
        with self._lock:
            if self._journal is not None:
                try:
                    self._journal.append(key, usage)
                except OSError as exc:  # a full disk: the count is still buffered, only a crash could lose it now
                    logger.error("could not journal usage (%s); it is kept in memory until written", exc)
            sums = self._pending.setdefault(key, [0, 0, 0])
            sums[0] += 1
            sums[1] += usage.prompt_tokens
            sums[2] += usage.completion_tokens
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="gptbuilder-usage", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        delay, failing_since = self.flush_seconds, None
        while not self._closed:
            self._wake.wait(delay)
            if self._closed:
                return  # close() writes the rest, with the writer stopped
            try:
                self.flush()
            except DatabaseError as exc:  # the sums stay pending (and journaled); retried, backing off to 30 s
                if failing_since is None:
                    failing_since = time.monotonic()
                    logger.error("could not write usage, keeping it to retry: %s", exc)
                delay = min(max(delay * 2, self.flush_seconds), MAX_RETRY_SECONDS)
                continue
            except Exception:
                logger.exception("could not write usage; will retry")
                continue
            if failing_since is not None:
                logger.warning("usage written again after %.0f s without the database", time.monotonic() - failing_since)
                delay, failing_since = self.flush_seconds, None
            if self._replay_due:
                self._replay_quietly()

    def flush(self) -> None:
        """Write the buffered sums (and how far into the journal they reach)."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                if self._journal is not None and self._journal.offset >= ROTATE_BYTES:
                    assert self._journal_dir is not None
                    self._retired.append(self._journal)
                    self._journal = UsageJournal(self._journal_dir)
                journals = [*self._retired, *([self._journal] if self._journal is not None else [])]
                marks = [(j.name, j.offset) for j in journals]
                retired = list(self._retired)
            if not pending and not retired:
                return
            try:
                self._write(pending, marks)
            except BaseException:
                with self._lock:  # put back what was not written
                    for key, sums in pending.items():
                        mine = self._pending.setdefault(key, [0, 0, 0])
                        for i in range(3):
                            mine[i] += sums[i]
                raise
            for journal in retired:
                journal.close(delete=True)
                self._forget(journal.name)
                self._retired.remove(journal)

    def close(self) -> None:
        """Write what is buffered and stop the background writer; the journal goes once all of it is written."""
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        try:
            self.flush()
        finally:
            written = not self._pending
            for journal in [*self._retired, *([self._journal] if self._journal is not None else [])]:
                journal.close(delete=written)  # kept when the database was away: the next start replays it
                if written:
                    self._forget(journal.name)
            self._retired, self._journal = [], None

    def record(self, key_id: str, gpt_id: str, usage: Usage, *, day: date | None = None) -> None:
        """Count one request and its tokens now."""
        day = day or datetime.now(UTC).date()
        self._write({(day, key_id, gpt_id): [1, usage.prompt_tokens, usage.completion_tokens]}, [])

    def replay(self) -> int:
        """Add the counts that dead processes journaled but never wrote; how many requests that was."""
        if self._journal_dir is None:
            return 0
        replayed = 0
        for orphan in orphans(self._journal_dir):
            try:
                with self.db.session() as s:
                    row = s.get(UsageJournalRow, orphan.name)
                    start = row.applied if row is not None else 0
                sums, end = orphan.read(start)
                self._write(sums, [(orphan.name, end)])
            except BaseException:
                orphan.release()
                raise
            orphan.remove()
            self._forget(orphan.name)
            replayed += sum(entry[0] for entry in sums.values())
        return replayed

    def _replay_quietly(self) -> None:
        try:
            replayed = self.replay()
        except DatabaseError as exc:  # the database may be away at start: the writer thread tries again
            logger.error("could not count the usage journals of stopped processes yet: %s", exc)
            return
        self._replay_due = False
        if replayed:
            logger.warning("usage: %d requests counted from the journals of processes that stopped unexpectedly", replayed)

    def _write(self, sums: Sums, marks: list[tuple[str, int]]) -> None:
        """Add ``sums`` to their rows and record the journal offsets they reach, in one transaction."""
        for attempt in range(3):  # two replicas may insert the day's first row at once: the loser retries
            try:
                with self.db.session() as s:
                    for (day, key_id, gpt_id), (requests, prompt, completion) in sums.items():
                        self._increment(s, day, key_id, gpt_id, requests, prompt, completion)
                    for name, offset in marks:
                        s.merge(UsageJournalRow(name=name, applied=offset))
                return
            except DatabaseError as exc:
                if attempt == 2 or not isinstance(exc.__cause__, IntegrityError):
                    raise

    @staticmethod
    def _increment(s: Session, day: date, key_id: str, gpt_id: str, requests: int, prompt: int, completion: int) -> None:
        values = {
            "requests": UsageRow.requests + requests,
            "prompt_tokens": UsageRow.prompt_tokens + prompt,
            "completion_tokens": UsageRow.completion_tokens + completion,
        }
        match = (UsageRow.day == day, UsageRow.key_id == key_id, UsageRow.gpt_id == gpt_id)
        # an UPDATE without RETURNING gives a CursorResult; Session.execute is typed as plain Result
        updated = cast(CursorResult[Any], s.execute(update(UsageRow).where(*match).values(**values)))
        if not updated.rowcount:
            s.add(UsageRow(day=day, key_id=key_id, gpt_id=gpt_id, requests=requests, prompt_tokens=prompt,
                           completion_tokens=completion))
            s.flush()  # a duplicate first row fails here, inside the retried transaction

    def _forget(self, name: str) -> None:
        try:
            with self.db.session() as s:
                s.execute(delete(UsageJournalRow).where(UsageJournalRow.name == name))
        except DatabaseError:  # a stale record of a deleted journal is harmless
            logger.warning("could not remove the usage journal record %s", name)

    def lines(self, *, key_id: str | None = None, start: date | None = None, end: date | None = None) -> list[UsageLine]:
        """Usage rows, newest day first; one key's when ``key_id`` is given, else everyone's (admin view)."""
        self.flush()
        query = select(UsageRow).order_by(UsageRow.day.desc(), UsageRow.gpt_id, UsageRow.key_id)
        if key_id is not None:
            query = query.where(UsageRow.key_id == key_id)
        if start is not None:
            query = query.where(UsageRow.day >= start)
        if end is not None:
            query = query.where(UsageRow.day <= end)
        with self.db.session() as s:
            rows = list(s.scalars(query))
        return [
            UsageLine(
                r.day, r.key_id, r.gpt_id, r.requests, r.prompt_tokens, r.completion_tokens,
                self.cost(r.gpt_id, r.prompt_tokens, r.completion_tokens),
            )
            for r in rows
        ]

    def cost(self, gpt_id: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Estimated cost from the price table (the GPT's own price, else "*"), or None without one."""
        price = self.prices.get(gpt_id) or self.prices.get("*")
        if price is None:
            return None
        return round(prompt_tokens / 1000 * price.prompt_per_1k + completion_tokens / 1000 * price.completion_per_1k, 6)
