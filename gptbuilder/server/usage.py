"""Usage accounting: requests and tokens per API key id, per GPT, per day, shared by every replica."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Date, Integer, String, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, Database
from ..events import Usage
from .config import Price

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


class UsageLedger:
    """Adds to and reads the usage table; increments are atomic, so replicas can count side by side.

    `add` only buffers (a database commit per request would cost more than the request); a background
    thread writes the sums every ``flush_seconds``, and `lines` and `close` write them first.
    """

    def __init__(self, db: Database, *, prices: dict[str, Price] | None = None, flush_seconds: float = 1.0):
        self.db = db
        self.prices = prices or {}
        self.flush_seconds = flush_seconds
        self._pending: dict[tuple[date, str, str], list[int]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, key_id: str, gpt_id: str, usage: Usage) -> None:
        """Count one request and its tokens soon (buffered)."""
        key = (datetime.now(UTC).date(), key_id, gpt_id)
        with self._lock:
            sums = self._pending.setdefault(key, [0, 0, 0])
            sums[0] += 1
            sums[1] += usage.prompt_tokens
            sums[2] += usage.completion_tokens
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="gptbuilder-usage", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_seconds)
            try:
                self.flush()
            except Exception:  # the sums stay pending; the next round retries
                logger.exception("could not write usage; will retry")

    def flush(self) -> None:
        """Write the buffered sums."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            try:
                for (day, key_id, gpt_id), (requests, prompt, completion) in list(pending.items()):
                    self._increment(day, key_id, gpt_id, requests, prompt, completion)
                    del pending[(day, key_id, gpt_id)]
            finally:
                if pending:  # put back what was not written
                    with self._lock:
                        for key, sums in pending.items():
                            mine = self._pending.setdefault(key, [0, 0, 0])
                            for i in range(3):
                                mine[i] += sums[i]

    def close(self) -> None:
        """Write what is buffered and stop the background writer."""
        self._closed = True
        self._wake.set()
        self.flush()

    def record(self, key_id: str, gpt_id: str, usage: Usage, *, day: date | None = None) -> None:
        """Count one request and its tokens now."""
        day = day or datetime.now(UTC).date()
        self._increment(day, key_id, gpt_id, 1, usage.prompt_tokens, usage.completion_tokens)

    def _increment(self, day: date, key_id: str, gpt_id: str, requests: int, prompt: int, completion: int) -> None:
        values = {
            "requests": UsageRow.requests + requests,
            "prompt_tokens": UsageRow.prompt_tokens + prompt,
            "completion_tokens": UsageRow.completion_tokens + completion,
        }
        match = (UsageRow.day == day, UsageRow.key_id == key_id, UsageRow.gpt_id == gpt_id)
        for _ in range(3):  # two replicas may insert the day's first row at once: the loser updates instead
            try:
                with self.db.session() as s:
                    # an UPDATE without RETURNING gives a CursorResult; Session.execute is typed as plain Result
                    updated = cast(CursorResult[Any], s.execute(update(UsageRow).where(*match).values(**values)))
                    if updated.rowcount:
                        return
                    s.add(
                        UsageRow(
                            day=day,
                            key_id=key_id,
                            gpt_id=gpt_id,
                            requests=requests,
                            prompt_tokens=prompt,
                            completion_tokens=completion,
                        )
                    )
                return
            except Exception as exc:  # DatabaseError wrapping IntegrityError on the unique row
                if not isinstance(exc.__cause__, IntegrityError):
                    raise

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
