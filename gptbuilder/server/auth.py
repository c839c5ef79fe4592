"""API keys: checked in constant time; only a key's hash-derived id is ever stored or logged."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from .config import ServerConfig
from .errors import APIError

ANONYMOUS = "anonymous"


def key_id(key: str) -> str:
    """A stable, non-reversible id for a key (what usage rows and logs carry)."""
    return "key_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's id (or "anonymous" when keys are off), admin or not, and the client IP."""

    key_id: str
    admin: bool
    ip: str


class KeyChecker:
    """Matches presented keys against the configured ones, each comparison in constant time."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self._keys = [k.encode("utf-8") for k in dict.fromkeys([*config.api_keys, *config.admin_keys])]
        self._admins = [k.encode("utf-8") for k in config.admin_keys]

    def _match(self, presented: str, keys: list[bytes]) -> bool:
        candidate = presented.encode("utf-8")
        found = False
        for key in keys:  # compare with every key, so timing does not reveal which one matched
            found |= hmac.compare_digest(candidate, key)
        return found

    def caller(self, request: HTTPConnection) -> Caller:
        """The caller of a protected route; 401 without a valid key when keys are configured."""
        ip = client_ip(request)
        if not self.config.auth_required:
            return Caller(ANONYMOUS, True, ip)
        presented = presented_key(request)
        if presented is None:
            raise APIError(
                401,
                "missing API key: send 'Authorization: Bearer <key>' (keys come from GPTBUILDER_API_KEYS)",
                code="missing_api_key",
                headers={"WWW-Authenticate": 'Bearer, Basic realm="gptbuilder"'},
            )
        if not self._match(presented, self._keys):
            raise APIError(
                401,
                "invalid API key",
                code="invalid_api_key",
                headers={"WWW-Authenticate": 'Bearer, Basic realm="gptbuilder"'},
            )
        return Caller(key_id(presented), self._match(presented, self._admins), ip)


def presented_key(request: HTTPConnection) -> str | None:
    """The key from `Authorization: Bearer …`, Basic auth (password; browsers on the store page) or `x-api-key`."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return request.headers.get("x-api-key") or None


def client_ip(request: HTTPConnection) -> str:
    """The peer address (put uvicorn's --forwarded-allow-ips behind a proxy to see the real client)."""
    return request.client.host if request.client else "unknown"
