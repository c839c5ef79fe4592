"""Stored Responses API answers: each is its owner's alone, and `previous_response_id` chains them into a conversation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String, delete, literal, select
from sqlalchemy.orm import Mapped, aliased, mapped_column

from ..db import Base, Database
from ..moderation.masking import mask_value


def _now() -> datetime:
    return datetime.now(UTC)


class ResponseRow(Base):
    __tablename__ = "api_responses"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # resp_<hex>
    owner: Mapped[str] = mapped_column(String(200), index=True)  # key:<key id>, never the key
    gpt_id: Mapped[str] = mapped_column(String(100))
    previous_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # This turn only: its input and the answer, as chat messages; earlier turns are their own rows.
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)  # the response object as it was answered
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)


class ResponseStore:
    """Saves, reads and deletes responses; every read is by owner, so another key's id is simply not found."""

    def __init__(self, db: Database):
        self.db = db

    def save(self, owner: str, body: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        """Keep a finished response and its turn's messages, personal data masked (later turns read them so)."""
        body, messages = mask_value(body), mask_value(messages)
        with self.db.session() as s:
            s.add(
                ResponseRow(
                    id=body["id"],
                    owner=owner,
                    gpt_id=body["model"],
                    previous_id=body.get("previous_response_id"),
                    messages=messages,
                    body=body,
                )
            )

    def get(self, owner: str, response_id: str) -> dict[str, Any] | None:
        """The response object, or None when there is none of this owner's."""
        with self.db.session() as s:
            return s.scalar(select(ResponseRow.body).where(ResponseRow.id == response_id, ResponseRow.owner == owner))

    def delete(self, owner: str, response_id: str) -> bool:
        """Forget one response (later turns no longer see it); False when there is none of this owner's."""
        with self.db.session() as s:
            return bool(s.execute(delete(ResponseRow).where(ResponseRow.id == response_id, ResponseRow.owner == owner)).rowcount)  # type: ignore[attr-defined]

    def conversation(self, owner: str, response_id: str, *, max_turns: int) -> list[dict[str, Any]] | None:
        """The messages of the newest ``max_turns`` turns ending at ``response_id``, oldest first; None when not this owner's.

        One recursive query walks the `previous_id` links, each step checked against the owner; a deleted
        turn ends the walk, so what was deleted is never sent to a model again.
        """
        first = select(ResponseRow.id, ResponseRow.previous_id, literal(0).label("depth")).where(
            ResponseRow.id == response_id, ResponseRow.owner == owner
        )
        chain = first.cte("chain", recursive=True)
        earlier = aliased(ResponseRow)
        chain = chain.union_all(
            select(earlier.id, earlier.previous_id, chain.c.depth + 1).where(
                earlier.id == chain.c.previous_id, earlier.owner == owner, chain.c.depth < max_turns - 1
            )
        )
        query = select(ResponseRow.messages).join(chain, ResponseRow.id == chain.c.id).order_by(chain.c.depth.desc())
        with self.db.session() as s:
            turns = list(s.scalars(query))
        if not turns:
            return None
        return [message for turn in turns for message in turn]
