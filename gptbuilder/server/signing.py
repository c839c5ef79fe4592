"""HMAC-signed tokens with a key kept in the shared database, so every replica signs and checks alike."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

from sqlalchemy import String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, Database
from ..errors import DatabaseError


class ServerSecretRow(Base):
    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class TokenError(Exception):
    """A token is missing, malformed or forged (subclasses say what else is wrong with it)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs small JSON payloads as ``<payload>.<signature>``; one named key per purpose.

    The key is ``secret`` when given, else a random one created once in the database under ``name``.
    """

    def __init__(self, db: Database, name: str, *, secret: str | None = None):
        self.db = db
        self.name = name
        self._key = secret.encode("utf-8") if secret else None

    def sign(self, payload: dict[str, Any]) -> str:
        """The token for ``payload`` (readable by anyone holding it, so put no secrets in it)."""
        encoded = _b64(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
        return f"{encoded}.{self._signature(encoded)}"

    def open(self, token: str | None, what: str = "token") -> dict[str, Any]:
        """The payload of a token this signer made; TokenError when missing, malformed or forged."""
        if not token or not token.isascii() or token.count(".") != 1:  # compare_digest refuses non-ASCII
            raise TokenError(f"missing or malformed {what}")
        encoded, signature = token.split(".")
        if not hmac.compare_digest(signature, self._signature(encoded)):
            raise TokenError(f"invalid {what}")
        try:
            payload = json.loads(_unb64(encoded))
        except ValueError:
            raise TokenError(f"invalid {what}") from None
        if not isinstance(payload, dict):
            raise TokenError(f"invalid {what}")
        return payload

    def _signature(self, encoded: str) -> str:
        return _b64(hmac.new(self._secret(), encoded.encode("ascii"), hashlib.sha256).digest())

    def _secret(self) -> bytes:
        if self._key is None:
            self._key = self._shared_secret().encode("utf-8")
        return self._key

    def _shared_secret(self) -> str:
        for _ in range(3):
            with self.db.session() as s:
                row = s.get(ServerSecretRow, self.name)
                if row is not None:
                    return row.value
            try:
                with self.db.session() as s:
                    s.add(ServerSecretRow(name=self.name, value=secrets.token_urlsafe(48)))
            except DatabaseError as exc:  # another replica created it first
                if not isinstance(exc.__cause__, IntegrityError):
                    raise
        raise DatabaseError(f"could not create the signing key {self.name!r}")  # pragma: no cover
