"""API keys with roles, and the store's sign-in sessions: keys are checked in constant time, and only a
key's hash-derived id is ever stored, logged or put in a session cookie."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from starlette.requests import HTTPConnection

from ..access import Identity, Role
from .config import ServerConfig
from .errors import APIError
from .origins import host_name, is_loopback
from .signing import TokenError

if TYPE_CHECKING:
    from .ratelimit import RateLimiter
    from .signing import Signer

ANONYMOUS = "anonymous"
_T = TypeVar("_T")
SESSION_COOKIE = "gptbuilder_session"
# Bearer only: offering Basic too (one header) made Chromium neither prompt nor show a way in.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="gptbuilder"'}


def key_id(key: str) -> str:
    """A stable, non-reversible id for a key (what usage rows and logs carry)."""
    return "key_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's id (or "anonymous" when keys are off), its role, and the client IP.

    Without keys only a request to a loopback `Host` is admin (everyone else a user), so a page that
    rebinds its own name to this server (DNS rebinding) or a network neighbour of an `--insecure`
    server is never one.
    """

    key_id: str
    role: Role
    ip: str

    @property
    def admin(self) -> bool:
        """Whether the caller may do anything (see the usage of every key, manage every GPT)."""
        return self.role is Role.ADMIN

    @property
    def identity(self) -> Identity:
        """The caller as the access rules see them (``key:<id>`` owns their conversations and GPTs)."""
        if self.key_id == ANONYMOUS:
            return Identity("local", self.role, label="this machine" if self.admin else "visitor")
        return Identity(f"key:{self.key_id}", self.role, label=f"{self.role.value} · key …{self.key_id[-4:]}", keyed=True)


class KeyChecker:
    """Matches presented keys against the configured ones, each comparison in constant time.

    With a ``limiter``, wrong or missing keys count per client IP: past
    ``config.failed_auth_per_minute_per_ip`` that IP gets 429 before any key is looked at.
    """

    def __init__(self, config: ServerConfig, limiter: RateLimiter | None = None, *, sessions: Signer | None = None):
        self.config = config
        self.limiter = limiter
        self.sessions = sessions
        self._keys = [(k.encode("utf-8"), role) for k, role in config.roles().items()]
        self._roles_by_id = {key_id(k): role for k, role in config.roles().items()}

    def _role(self, presented: str) -> Role | None:
        candidate = presented.encode("utf-8")
        found: Role | None = None
        for key, role in self._keys:  # compare with every key, so timing does not reveal which one matched
            if hmac.compare_digest(candidate, key):
                found = role
        return found

    def caller(self, request: HTTPConnection) -> Caller:
        """The caller of a protected route; 401 without a valid key (or sign-in session) when keys are configured."""
        ip = client_ip(request)
        if not self.config.auth_required:
            return Caller(ANONYMOUS, Role.ADMIN if is_loopback_request(request) else Role.USER, ip)
        return self._counting_failures(ip, lambda: self._authenticated(request, ip))

    def signed_in(self, key: str, ip: str) -> tuple[Caller, str]:
        """Check a key typed into the sign-in page: the caller and their session token (failures count per IP)."""
        return self._counting_failures(ip, lambda: self._session_for(key, ip))

    def _counting_failures(self, ip: str, check: Callable[[], _T]) -> _T:
        per_minute = self.config.failed_auth_per_minute_per_ip
        if self.limiter is not None:
            self.limiter.refuse_when_spent("failed authentication", ip, per_minute)
        try:
            return check()
        except APIError:
            if self.limiter is not None:
                self.limiter.spend("failed authentication", ip, per_minute)
            raise

    def _session_for(self, key: str, ip: str) -> tuple[Caller, str]:
        role = self._role(key)
        if role is None or self.sessions is None:
            raise APIError(401, "invalid API key", code="invalid_api_key", headers=_CHALLENGE)
        caller = Caller(key_id(key), role, ip)
        token = self.sessions.sign({"k": caller.key_id, "e": int(time.time()) + self.config.session_seconds})
        return caller, token

    def _authenticated(self, request: HTTPConnection, ip: str) -> Caller:
        presented = presented_key(request)
        if presented is None:
            session = request.cookies.get(SESSION_COOKIE)
            if session and self.sessions is not None:
                return self._from_session(session, ip)
            raise APIError(
                401,
                "missing API key: send 'Authorization: Bearer <key>', or sign in at /signin in a browser",
                code="missing_api_key",
                headers=_CHALLENGE,
            )
        role = self._role(presented)
        if role is None:
            raise APIError(401, "invalid API key", code="invalid_api_key", headers=_CHALLENGE)
        return Caller(key_id(presented), role, ip)

    def _from_session(self, token: str, ip: str) -> Caller:
        """The caller of a signed-in browser; its key must still be configured (removing a key signs it out)."""
        assert self.sessions is not None  # checked by the caller
        expired = APIError(401, "your sign-in expired or its key was removed; sign in again at /signin",
                           code="session_expired", headers=_CHALLENGE)
        try:
            payload = self.sessions.open(token, "session")
        except TokenError:
            raise expired from None
        role = self._roles_by_id.get(str(payload.get("k")))
        expires = payload.get("e")
        if role is None or not isinstance(expires, int) or expires < time.time():
            raise expired
        return Caller(str(payload["k"]), role, ip)


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
