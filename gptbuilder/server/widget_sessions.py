"""Widget sessions and the signing secret, in the shared database so every replica honours every token."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, Database
from .signing import Signer, TokenError

__all__ = ["TokenError", "WidgetSessions", "WidgetToken"]

_SECRET_NAME = "widget-token-key"


class WidgetSessionRow(Base):
    __tablename__ = "widget_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    gpt_id: Mapped[str] = mapped_column(String(100), index=True)
    origin: Mapped[str] = mapped_column(String(300))
    conversation_id: Mapped[str] = mapped_column(String(32))
    messages: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class WidgetToken:
    """What a valid token grants: one session with one GPT, for one page origin, until ``expires``."""

    gpt_id: str
    origin: str
    session_id: str
    expires: int


class WidgetSessions:
    """Issues and checks HMAC-signed widget tokens; counts each session's messages."""

    def __init__(self, db: Database, *, secret: str | None = None, lifetime: int = 3600):
        self.db = db
        self.lifetime = lifetime
        self._signer = Signer(db, _SECRET_NAME, secret=secret)

    @staticmethod
    def new_id() -> str:
        """A random, unguessable session id (its conversation's owner is ``widget:<id>``)."""
        return uuid.uuid4().hex

    def issue(self, gpt_id: str, origin: str, conversation_id: str, session_id: str) -> tuple[str, WidgetToken]:
        """A new session and its token."""
        token = WidgetToken(gpt_id, origin, session_id, int(time.time()) + self.lifetime)
        with self.db.session() as s:
            s.add(
                WidgetSessionRow(
                    id=token.session_id,
                    gpt_id=gpt_id,
                    origin=origin,
                    conversation_id=conversation_id,
                    expires_at=datetime.fromtimestamp(token.expires, UTC),
                )
            )
        return self._signer.sign({"g": gpt_id, "o": origin, "s": token.session_id, "e": token.expires}), token

    def verify(self, text: str | None, gpt_id: str) -> WidgetToken:
        """The token's grant; TokenError when forged, expired or for another GPT."""
        data = self._signer.open(text, "widget token")
        try:
            token = WidgetToken(str(data["g"]), str(data["o"]), str(data["s"]), int(data["e"]))
        except (ValueError, KeyError, TypeError):
            raise TokenError("invalid widget token") from None
        if token.expires < time.time():
            raise TokenError("the widget session expired; reload the page")
        if token.gpt_id != gpt_id:
            raise TokenError("this widget token is for another GPT")
        return token

    def count_message(self, token: WidgetToken, limit: int) -> str:
        """Count one message in the session; return its conversation id; TokenError past ``limit``."""
        with self.db.session() as s:
            row = s.get(WidgetSessionRow, token.session_id, with_for_update=True)
            if row is None:
                raise TokenError("unknown widget session; reload the page")
            if row.messages >= limit:
                raise OverflowError(f"this chat reached its limit of {limit} messages; reload the page to start over")
            row.messages += 1
            return row.conversation_id
