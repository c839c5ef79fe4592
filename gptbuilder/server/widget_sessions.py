"""Widget sessions and the signing secret, in the shared database so every replica honours every token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, Database
from ..errors import DatabaseError

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


class ServerSecretRow(Base):
    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


@dataclass(frozen=True)
class WidgetToken:
    """What a valid token grants: one session with one GPT, for one page origin, until ``expires``."""

    gpt_id: str
    origin: str
    session_id: str
    expires: int


class TokenError(Exception):
    """A widget token is missing, forged, expired or for another GPT or origin."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class WidgetSessions:
    """Issues and checks HMAC-signed widget tokens; counts each session's messages."""

    def __init__(self, db: Database, *, secret: str | None = None, lifetime: int = 3600):
        self.db = db
        self.lifetime = lifetime
        self._key = secret.encode("utf-8") if secret else None

    def _secret(self) -> bytes:
        if self._key is None:
            self._key = self._shared_secret().encode("utf-8")
        return self._key

    def _shared_secret(self) -> str:
        """One random key in the database: replicas sign and check with the same key without configuration."""
        for _ in range(3):
            with self.db.session() as s:
                row = s.get(ServerSecretRow, _SECRET_NAME)
                if row is not None:
                    return row.value
            try:
                with self.db.session() as s:
                    s.add(ServerSecretRow(name=_SECRET_NAME, value=secrets.token_urlsafe(48)))
            except DatabaseError as exc:  # another replica created it first
                if not isinstance(exc.__cause__, IntegrityError):
                    raise
        raise DatabaseError("could not create the widget signing key")  # pragma: no cover

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret(), payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, gpt_id: str, origin: str, conversation_id: str) -> tuple[str, WidgetToken]:
        """A new session and its token."""
        token = WidgetToken(gpt_id, origin, uuid.uuid4().hex, int(time.time()) + self.lifetime)
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
        payload = _b64(json.dumps({"g": gpt_id, "o": origin, "s": token.session_id, "e": token.expires}).encode())
        return f"{payload}.{self._sign(payload)}", token

    def verify(self, text: str | None, gpt_id: str) -> WidgetToken:
        """The token's grant; TokenError when forged, expired or for another GPT."""
        if not text or not text.isascii() or text.count(".") != 1:  # compare_digest refuses non-ASCII
            raise TokenError("missing or malformed widget token")
        payload, signature = text.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise TokenError("invalid widget token")
        try:
            data = json.loads(_unb64(payload))
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
