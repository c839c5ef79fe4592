"""API keys: checked in constant time; only a key's hash-derived id is ever stored or logged."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from .config import ServerConfig
from .errors import APIError
from .origins import host_name, is_loopback

if TYPE_CHECKING:
    from .ratelimit import RateLimiter

ANONYMOUS = "anonymous"


def key_id(key: str) -> str:
    """A stable, non-reversible id for a key (what usage rows and logs carry)."""
    return "key_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's id (or "anonymous" when keys are off), admin or not, and the client IP.

    Without keys only a request to a loopback `Host` is admin, so a page that rebinds its own name to
    this server (DNS rebinding) or a network neighbour of an `--insecure` server is never one.
    """

    key_id: str
    admin: bool
    ip: str


class KeyChecker:
    """Matches presented keys against the configured ones, each comparison in constant time.

    With a ``limiter``, wrong or missing keys count per client IP: past
    ``config.failed_auth_per_minute_per_ip`` that IP gets 429 before any key is looked at.
    """

    def __init__(self, config: ServerConfig, limiter: RateLimiter | None = None):
        self.config = config
        self.limiter = limiter
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
            return Caller(ANONYMOUS, is_loopback_request(request), ip)
        per_minute = self.config.failed_auth_per_minute_per_ip
        if self.limiter is not None:
            self.limiter.refuse_when_spent("failed authentication", ip, per_minute)
        try:
            return self._authenticated(request, ip)
        except APIError:
            if self.limiter is not None:
                self.limiter.spend("failed authentication", ip, per_minute)
            raise

    def _authenticated(self, request: HTTPConnection, ip: str) -> Caller:
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


def is_loopback_request(request: HTTPConnection) -> bool:
    """Whether the request was sent to a loopback name (`Host: localhost`, `127.0.0.1`, `[::1]`)."""
    return is_loopback(host_name(request.headers.get("host", "")))


def client_ip(request: HTTPConnection) -> str:
    """The peer address (put uvicorn's --forwarded-allow-ips behind a proxy to see the real client)."""
    return request.client.host if request.client else "unknown"
