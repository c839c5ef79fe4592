"""Conversations, messages, feedback and ratings, shared by the store UI, the API and the widget.

Everything written here is stored with its personal data masked (`[email]`, `[card]`, …; see
moderation/masking.py), whatever a GPT's moderation says: message text and what is kept beside it,
titles and feedback comments. A turn answers what the user wrote (`as_sent`); later turns read it masked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, delete, func, select
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, Database
from .errors import InputError
from .moderation.masking import mask_text, mask_value
from .pending import HOLD_FOR, Call, plain_call

MAX_TITLE_CHARS = 120
MAX_COMMENT_CHARS = 2000


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_new_id)
    gpt_id: Mapped[str] = mapped_column(String(100), index=True)
    title: Mapped[str] = mapped_column(String(MAX_TITLE_CHARS), default="")
    channel: Mapped[str] = mapped_column(String(20), default="store")  # store | widget | api
    owner: Mapped[str] = mapped_column(String(200), default="", index=True)  # browser session, API key id…
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)


class MessageRow(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # citations, tool steps, error, curated…
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("message_id", name="one_feedback_per_message"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    gpt_id: Mapped[str] = mapped_column(String(100), index=True)
    value: Mapped[int] = mapped_column(Integer)  # +1 thumbs up, -1 thumbs down
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class RatingRow(Base):
    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("gpt_id", "owner", name="one_rating_per_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gpt_id: Mapped[str] = mapped_column(String(100), index=True)
    owner: Mapped[str] = mapped_column(String(200), default="")
    stars: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


@dataclass
class Message:
    """One stored message."""

    id: int
    role: str
    content: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Conversation:
    """A stored conversation's summary (messages are read separately)."""

    id: str
    gpt_id: str
    title: str
    channel: str
    owner: str
    created_at: datetime
    updated_at: datetime


@dataclass
class GPTStats:
    """What the store shows on a GPT's card."""

    conversations: int = 0
    rating: float | None = None
    ratings: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0


def _conversation(row: ConversationRow) -> Conversation:
    return Conversation(row.id, row.gpt_id, row.title, row.channel, row.owner, row.created_at, row.updated_at)


def _title_from(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= 60 else words[:59].rstrip() + "…"


class History:
    """Reads and writes conversations, feedback and ratings in a `Database`."""

    def __init__(self, db: Database):
        self.db = db

    def start(self, gpt_id: str, *, title: str = "", channel: str = "store", owner: str = "") -> Conversation:
        """A new, empty conversation with a GPT."""
        with self.db.session() as s:
            row = ConversationRow(gpt_id=gpt_id, title=mask_text(title)[:MAX_TITLE_CHARS], channel=channel, owner=owner)
            s.add(row)
            s.flush()
            return _conversation(row)

    def add(self, conversation_id: str, role: str, content: str, **extra: Any) -> Message:
        """Append a message (masked); the first user message names an untitled conversation."""
        content, extra = mask_text(content), mask_value(extra)
        with self.db.session() as s:
            conv = s.get(ConversationRow, conversation_id)
            if conv is None:
                raise InputError(f"no conversation {conversation_id!r}")
            row = MessageRow(conversation_id=conversation_id, role=role, content=content, extra=extra)
            s.add(row)
            if not conv.title and role == "user" and content.strip():
                conv.title = _title_from(content)
            conv.updated_at = _now()
            s.flush()
            return Message(row.id, row.role, row.content, dict(row.extra))

    def update(self, message_id: int, content: str, **extra: Any) -> None:
        """Rewrite a message (e.g. an answer completed after streaming, or regenerated), masked."""
        content, extra = mask_text(content), mask_value(extra)
        with self.db.session() as s:
            row = s.get(MessageRow, message_id)
            if row is None:
                raise InputError(f"no message {message_id}")
            row.content = content
            row.extra = {**(row.extra or {}), **extra}

    def get(self, conversation_id: str) -> Conversation:
        """One conversation; InputError when it does not exist."""
        with self.db.session() as s:
            row = s.get(ConversationRow, conversation_id)
            if row is None:
                raise InputError(f"no conversation {conversation_id!r}")
            return _conversation(row)

    def conversation_of(self, message_id: int) -> Conversation:
        """The conversation a message is in; InputError when there is no such message."""
        with self.db.session() as s:
            message = s.get(MessageRow, message_id)
            row = s.get(ConversationRow, message.conversation_id) if message is not None else None
            if row is None:
                raise InputError(f"no message {message_id}")
            return _conversation(row)

    def messages(self, conversation_id: str) -> list[Message]:
        """A conversation's messages, oldest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(MessageRow).where(MessageRow.conversation_id == conversation_id).order_by(MessageRow.id)
            )
            return [Message(r.id, r.role, r.content, dict(r.extra or {})) for r in rows]

    def conversations(self, gpt_id: str | None = None, *, owner: str | None = None, limit: int = 100) -> list[Conversation]:
        """Conversations, most recently active first, optionally for one GPT and/or owner."""
        query = select(ConversationRow).order_by(ConversationRow.updated_at.desc()).limit(limit)
        if gpt_id is not None:
            query = query.where(ConversationRow.gpt_id == gpt_id)
        if owner is not None:
            query = query.where(ConversationRow.owner == owner)
        with self.db.session() as s:
            return [_conversation(r) for r in s.scalars(query)]

    def rename(self, conversation_id: str, title: str) -> None:
        """Give a conversation a new title (trimmed; empty is refused)."""
        title = mask_text(" ".join(title.split()))
        if not title:
            raise InputError("a conversation title cannot be empty")
        with self.db.session() as s:
            row = s.get(ConversationRow, conversation_id)
            if row is None:
                raise InputError(f"no conversation {conversation_id!r}")
            row.title = title[:MAX_TITLE_CHARS]

    def delete(self, conversation_id: str) -> None:
        """Delete a conversation with its messages and their feedback."""
        with self.db.session() as s:
            row = s.get(ConversationRow, conversation_id)
            if row is None:
                raise InputError(f"no conversation {conversation_id!r}")
            ids = select(MessageRow.id).where(MessageRow.conversation_id == conversation_id)
            s.query(FeedbackRow).filter(FeedbackRow.message_id.in_(ids)).delete(synchronize_session=False)
            s.query(MessageRow).filter(MessageRow.conversation_id == conversation_id).delete(synchronize_session=False)
            s.delete(row)

    def feedback(self, message_id: int, value: int, comment: str = "") -> None:
        """Thumbs up (+1) or down (-1) on an assistant message, replacing earlier feedback on it."""
        if value not in (1, -1):
            raise InputError("feedback is +1 (thumbs up) or -1 (thumbs down)")
        if len(comment) > MAX_COMMENT_CHARS:
            raise InputError(f"a feedback comment is at most {MAX_COMMENT_CHARS} characters")
        comment = mask_text(comment)
        with self.db.session() as s:
            message = s.get(MessageRow, message_id)
            if message is None or message.role != "assistant":
                raise InputError(f"no assistant message {message_id}")
            conversation = s.get(ConversationRow, message.conversation_id)
            assert conversation is not None  # a message's conversation exists: foreign key, deleted together
            gpt_id = conversation.gpt_id
            row = s.scalars(select(FeedbackRow).where(FeedbackRow.message_id == message_id)).first()
            if row is None:
                s.add(FeedbackRow(message_id=message_id, gpt_id=gpt_id, value=value, comment=comment))
            else:
                row.value, row.comment = value, comment

    def rate(self, gpt_id: str, stars: int, *, owner: str = "") -> None:
        """Rate a GPT 1–5; one rating per owner, the latest counts."""
        if not isinstance(stars, int) or isinstance(stars, bool) or not 1 <= stars <= 5:
            raise InputError("a rating is a whole number of stars from 1 to 5")
        with self.db.session() as s:
            row = s.scalars(select(RatingRow).where(RatingRow.gpt_id == gpt_id, RatingRow.owner == owner)).first()
            if row is None:
                s.add(RatingRow(gpt_id=gpt_id, owner=owner, stars=stars))
            else:
                row.stars = stars

    def rating(self, gpt_id: str, *, owner: str = "") -> int | None:
        """The stars this owner gave a GPT, or None when they have not rated it."""
        with self.db.session() as s:
            return s.scalars(select(RatingRow.stars).where(RatingRow.gpt_id == gpt_id, RatingRow.owner == owner)).first()

    def stats(self) -> dict[str, GPTStats]:
        """Per GPT: conversation count, average rating and thumbs, in three grouped queries."""
        out: dict[str, GPTStats] = {}
        with self.db.session() as s:
            for gpt_id, count in s.execute(select(ConversationRow.gpt_id, func.count()).group_by(ConversationRow.gpt_id)):
                out.setdefault(gpt_id, GPTStats()).conversations = count
            for gpt_id, avg, count in s.execute(
                select(RatingRow.gpt_id, func.avg(RatingRow.stars), func.count()).group_by(RatingRow.gpt_id)
            ):
                stats = out.setdefault(gpt_id, GPTStats())
                stats.rating, stats.ratings = round(float(avg), 2), count
            for gpt_id, value, count in s.execute(
                select(FeedbackRow.gpt_id, FeedbackRow.value, func.count()).group_by(FeedbackRow.gpt_id, FeedbackRow.value)
            ):
                stats = out.setdefault(gpt_id, GPTStats())
                if value > 0:
                    stats.thumbs_up = count
                else:
                    stats.thumbs_down = count
        return out


def as_sent(stored: list[Message], sent: Message, text: str) -> list[Message]:
    """The stored conversation with the message just added as the user wrote it, for this turn's model.

    What is stored is masked; the turn that answers a message still answers what was written (the GPT's own
    `moderation: {pii: mask}` decides whether its model sees personal data). Later turns read it masked.
    """
    return [Message(m.id, m.role, text, m.extra) if m.id == sent.id else m for m in stored]


# How often a streaming answer's text so far is written: what a crash of the server can lose of it.
PARTIAL_SAVE_SECONDS = 1.0


class PartialAnswer:
    """Writes a streaming answer's text as it grows (at most once a second), marked as still streaming.

    A process killed mid-answer leaves the text shown so far, with `streaming: true`, so the conversation
    shows an answer that did not finish instead of losing it; the finished answer clears the mark.
    """

    def __init__(self, history: History, message_id: int, *, every: float | None = None):
        self.history = history
        self.message_id = message_id
        self.every = PARTIAL_SAVE_SECONDS if every is None else every
        self._saved_at = time.monotonic()
        self._saved = ""

    def grew(self, text: str) -> None:
        """The answer so far; written when a second has passed since the last write and it changed."""
        if text != self._saved and time.monotonic() - self._saved_at >= self.every:
            self.history.update(self.message_id, text, streaming=True)
            self._saved, self._saved_at = text, time.monotonic()


class PendingCallRow(Base):
    __tablename__ = "pending_tool_calls"
    __table_args__ = (UniqueConstraint("owner", "gpt_id", "call_id", name="one_held_call_per_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(200))
    gpt_id: Mapped[str] = mapped_column(String(100))
    call_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class DatabasePendingCalls:
    """Held calls in the database every replica shares."""

    def __init__(self, db: Database):
        self.db = db

    def hold(self, owner: str, gpt_id: str, calls: Iterable[Call]) -> None:
        """Keep the calls (a call id held again replaces the old one); drop what has expired."""
        now = datetime.now(UTC)
        plain = [plain_call(call) for call in calls]
        with self.db.session() as session:
            session.execute(delete(PendingCallRow).where(PendingCallRow.created_at < now - HOLD_FOR))
            ids = [call["id"] for call in plain]
            session.execute(delete(PendingCallRow).where(*_owned(owner, gpt_id), PendingCallRow.call_id.in_(ids)))
            session.add_all(
                PendingCallRow(owner=owner, gpt_id=gpt_id, call_id=c["id"], name=c["name"], arguments=c["args"], created_at=now)
                for c in plain
            )

    def take(self, owner: str, gpt_id: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        """The held calls with these ids, removed in the same transaction (a call runs at most once)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        cutoff = datetime.now(UTC) - HOLD_FOR
        # One DELETE … RETURNING: of two requests approving the same call at once, only one gets it.
        statement = (
            delete(PendingCallRow)
            .where(*_owned(owner, gpt_id), PendingCallRow.call_id.in_(wanted))
            .returning(PendingCallRow.call_id, PendingCallRow.name, PendingCallRow.arguments, PendingCallRow.created_at)
        )
        with self.db.session() as session:
            rows = session.execute(statement).all()
        found = {row.call_id: row for row in rows if _aware(row.created_at) >= cutoff}
        return [{"id": i, "name": found[i].name, "args": dict(found[i].arguments)} for i in wanted if i in found]


def _owned(owner: str, gpt_id: str) -> tuple[Any, ...]:
    return (PendingCallRow.owner == owner, PendingCallRow.gpt_id == gpt_id)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for what was stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
