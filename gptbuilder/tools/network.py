"""Outgoing HTTP for tools, guarded against SSRF: vetted addresses, checked redirects, capped bodies.

Every TCP connection goes through `_VettingBackend`, an httpcore network backend that resolves the
host once with `socket.getaddrinfo`, refuses it if any address is off limits, and then connects to
that very address. The check and the connection use the same lookup, so a DNS answer that changes
between them (DNS rebinding) cannot slip a private address in; TLS still verifies the certificate
against the host name, because httpcore passes the original host as SNI / server_hostname.
Redirects are followed here, one hop at a time, so each hop is checked the same way.

One deadline covers the whole request, redirects included: the DNS lookup, every connect, TLS handshake, read
and write of the connection's `_DeadlineStream` gets only the time left, so a server that drips its headers
or body a byte at a time cannot stretch it (httpcore's own timeouts restart at every read). Bodies are asked
for uncompressed, and one compressed anyway is decoded a step at a time with the cap on the decoded size.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from ..errors import ToolError
from .decompress import ContentDecodingError, decoded

MAX_REDIRECTS = 5
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "gptbuilder-action/0.1"

# Cloud instance-metadata services hand out credentials: refused even when private networks are allowed.
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "169.254.169.0/24",  # AWS, GCP, Azure, OCI, DigitalOcean... (169.254.169.254), AWS DNS/NTP
        "169.254.170.0/24",  # AWS ECS task metadata (169.254.170.2), EKS pod identity (169.254.170.23)
        "100.100.100.200/32",  # Alibaba Cloud
        "192.0.0.192/32",  # Oracle Cloud (classic)
        "168.63.129.16/32",  # Azure WireServer
        "fd00:ec2::/64",  # AWS IMDS over IPv6 (fd00:ec2::254), EKS pod identity (fd00:ec2::23)
    )
)
_KEPT_ACROSS_ORIGINS = frozenset({"accept", "user-agent", "accept-encoding"})
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215
_WRITE_STEP = 64 * 1024
# the monotonic time by which the request under way must be over; read by every network operation
_deadline: ContextVar[float | None] = ContextVar("gptbuilder_network_deadline", default=None)


class NetworkError(ToolError):
    """An outgoing request failed or was refused; the message says which and why."""


class BlockedRequestError(NetworkError):
    """The request was refused before any connection: scheme, host or address is off limits."""


class ResponseTooLargeError(NetworkError):
    """The response body is larger than the configured cap."""


class RequestTimeoutError(NetworkError):
    """The server did not answer in time."""


@dataclass(frozen=True)
class GuardedResponse:
    """A fully read response (the body is within the cap)."""

    status_code: int
    url: str
    headers: httpx.Headers
    content: bytes
    redirects: int = 0

    @property
    def reason_phrase(self) -> str:
        """'Not Found' for 404, '' for unknown codes."""
        return httpx.codes.get_reason_phrase(self.status_code)

    @property
    def is_success(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status_code < 300

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower case."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def text(self) -> str:
        """The body decoded with its charset (UTF-8 when none is given), bad bytes replaced."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (raises ValueError when it is not)."""
        return json.loads(self.text)


def _rfc6052_ipv4(ip: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address that a NAT64 prefix of this length carries in ``ip`` (RFC 6052, 2.2: bits 64-71 skipped)."""
    bits = f"{int(ip):0128b}"
    if prefix_length == 96:
        return ipaddress.IPv4Address(int(bits[96:], 2))
    return ipaddress.IPv4Address(int(bits[prefix_length:64] + bits[72:72 + prefix_length - 32], 2))


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_private: bool) -> str | None:
    """Why connecting to ``ip`` is refused, or None when it is fine."""
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    if isinstance(ip, ipaddress.IPv6Address):
        # an IPv4 address smuggled inside IPv6 is judged (first) as the IPv4 address it reaches
        for embedded in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if embedded is not None:
                candidates.append(embedded)
        if ip in _NAT64_WELL_KNOWN or ip in _NAT64_LOCAL_USE:
            candidates.append(_rfc6052_ipv4(ip, 96))
        if ip in _NAT64_LOCAL_USE:
            # a local-use prefix may be 48 to 96 bits long, which moves the IPv4 address; a metadata address in
            # any of those places is refused (only there: other layouts of an ordinary address decode to noise)
            for length in (48, 56, 64):
                if any(_rfc6052_ipv4(ip, length) in net for net in METADATA_NETWORKS if net.version == 4):
                    return "a cloud metadata address"
    candidates.append(ip)
    for candidate in candidates:
        if any(candidate in net for net in METADATA_NETWORKS if net.version == candidate.version):
            return "a cloud metadata address"
        if candidate.is_unspecified:
            return "an unspecified address"
        if candidate.is_multicast:
            return "a multicast address"
        if allow_private:
            continue
        for flag, what in (
            ("is_loopback", "a loopback address"),
            ("is_link_local", "a link-local address"),
            ("is_private", "a private-network address"),
            ("is_reserved", "a reserved address"),
        ):
            if getattr(candidate, flag):
                return what
        if not candidate.is_global:
            return "a non-public address"
    return None


def _time_left(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    """``timeout`` shortened to what is left before the request's deadline; ``expired`` once it has passed."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


def _getaddrinfo(host: str, port: int, timeout: float | None) -> list[Any]:
    """`socket.getaddrinfo`, given up on after ``timeout`` (the resolver's own retries can take half a minute)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        timeout = None  # a literal address: nothing to wait for
    if timeout is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    outcome: list[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the waiting thread below
            outcome.append(exc)
        finally:
            done.set()

    # the lookup cannot be interrupted: on timeout its thread is left to finish on its own
    threading.Thread(target=lookup, name=f"gptbuilder-dns-{host}", daemon=True).start()
    if not done.wait(timeout):
        raise httpcore.ConnectTimeout(f"no DNS answer for {host!r} in time")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def resolve_vetted(host: str, port: int, *, allow_private: bool, timeout: float | None = None) -> list[str]:
    """Resolve ``host`` once and return its addresses, refusing the host if any of them is off limits."""
    try:
        infos = _getaddrinfo(host, port, timeout)
    except (socket.gaierror, UnicodeError) as exc:
        raise NetworkError(f"cannot resolve host {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%")[0]  # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise NetworkError(f"cannot resolve host {host!r}: no addresses")
    for address in addresses:
        problem = address_problem(ipaddress.ip_address(address), allow_private=allow_private)
        if problem:
            shown = host if host == address else f"{host} ({address})"
            hint = "" if allow_private or "metadata" in problem else (
                "; private networks are off unless the GPT sets allow_private_network: true"
            )
            raise BlockedRequestError(f"refused to connect to {shown}: it is {problem}{hint}")
    return addresses


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation gets no more time than is left before the request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """One read, bounded by the deadline."""
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write in steps, each bounded by the deadline (a server that reads slowly cannot stretch one step)."""
        for start in range(0, len(buffer), _WRITE_STEP):
            self._stream.write(buffer[start:start + _WRITE_STEP], _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        """Close the connection."""
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        """The TLS handshake, bounded by the deadline; the TLS stream is bounded the same way."""
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                      _time_left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        """What the underlying stream says (socket, ssl_object, is_readable...)."""
        return self._stream.get_extra_info(info)


class _VettingBackend(httpcore.SyncBackend):
    """Connects only to addresses that `resolve_vetted` accepted, from one lookup, within the request's deadline."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        """Resolve and vet ``host``, then connect to the first vetted address that answers."""
        failure: Exception | None = None
        addresses = resolve_vetted(host, port, allow_private=self.allow_private,
                                   timeout=_time_left(timeout, httpcore.ConnectTimeout))
        for address in addresses:
            try:
                stream = super().connect_tcp(address, port, _time_left(timeout, httpcore.ConnectTimeout),
                                             local_address, socket_options)
                return _DeadlineStream(stream)
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Turn httpcore's exceptions into this module's (our own refusals pass through unchanged)."""
    try:
        yield
    except httpcore.TimeoutException:
        raise RequestTimeoutError("timed out waiting for the server") from None
    except (httpcore.ConnectError, httpcore.NetworkError) as exc:
        raise NetworkError(f"connection failed: {exc or type(exc).__name__}") from None
    except httpcore.ProtocolError as exc:
        raise NetworkError(f"the server broke the HTTP protocol: {exc or type(exc).__name__}") from None


class _MappedStream(httpx.SyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _mapped_errors():
            yield from self._stream

    def close(self) -> None:
        if hasattr(self._stream, "close"):
            self._stream.close()


class _GuardedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool whose every connection is vetted; never a proxy."""

    def __init__(self, *, allow_private: bool) -> None:
        self._pool = httpcore.ConnectionPool(
            network_backend=_VettingBackend(allow_private=allow_private),
            max_connections=10,
            keepalive_expiry=30.0,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request (no redirects) through the vetted pool."""
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                             target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _mapped_errors():
            response = self._pool.handle_request(core_request)
        return httpx.Response(response.status, headers=response.headers, stream=_MappedStream(response.stream),
                              extensions=response.extensions)

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()


class GuardedClient:
    """Sends requests through the SSRF guard; build one with `guarded_client`."""

    def __init__(self, *, allow_private: bool, allowed_hosts: set[str] | None = None, timeout: float = 15.0,
                 max_response_bytes: int = 1_000_000) -> None:
        self.allow_private = allow_private
        self.allowed_hosts = {h.lower().strip("[]") for h in allowed_hosts} if allowed_hosts is not None else None
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._transport = _GuardedTransport(allow_private=allow_private)

    def __enter__(self) -> GuardedClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections."""
        self._transport.close()

    def get(self, url: str, **kwargs: Any) -> GuardedResponse:
        """`request("GET", url, ...)`."""
        return self.request("GET", url, **kwargs)

    def request(self, method: str, url: str, *, params: Any = None, headers: Mapping[str, str] | None = None,
                json: Any = None, data: Mapping[str, Any] | None = None,
                content: bytes | None = None) -> GuardedResponse:
        """Send one request, following up to MAX_REDIRECTS redirects, each checked like the first.

        The whole exchange, redirects included, ends within ``timeout`` seconds or raises RequestTimeoutError.
        """
        try:
            request = httpx.Request(method, url, params=params, headers=self._headers(headers), json=json,
                                    data=data, content=content)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as exc:
            raise BlockedRequestError(f"invalid request to {url!r}: {exc}") from None
        token = _deadline.set(time.monotonic() + self.timeout)
        try:
            for hop in range(MAX_REDIRECTS + 1):
                self._check_url(request.url)
                response = self._send(request)
                location = response.headers.get("location")
                if response.status_code not in REDIRECT_CODES or not location:
                    return self._read(request, response, hop)
                response.close()
                request = self._redirected(request, response.status_code, location)
        finally:
            _deadline.reset(token)
        raise NetworkError(f"too many redirects (more than {MAX_REDIRECTS}) starting from {url}")

    def _headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        # identity: a compressed body could expand far beyond the cap inside one chunk
        merged = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        merged.update(headers or {})
        return merged

    def _check_url(self, url: httpx.URL) -> None:
        if url.scheme not in ("http", "https"):
            raise BlockedRequestError(f"refused {url.scheme or 'relative'}:// URL {str(url)!r}: only http and https")
        host = url.host.lower()
        if not host:
            raise BlockedRequestError(f"refused URL {str(url)!r}: it has no host")
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            allowed = ", ".join(sorted(self.allowed_hosts)) or "none"
            raise BlockedRequestError(f"refused to contact {host}: not an allowed host (allowed: {allowed})")

    def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            # what is left also bounds the wait for a pooled connection (_DeadlineStream bounds the rest)
            with _mapped_errors():
                request.extensions["timeout"] = httpx.Timeout(_time_left(None, httpcore.PoolTimeout)).as_dict()
            return self._transport.handle_request(request)
        except RequestTimeoutError:
            raise RequestTimeoutError(f"no answer from {request.url.host} within {self.timeout:g} s") from None
        except NetworkError as exc:
            if isinstance(exc, BlockedRequestError) or str(request.url.host) in str(exc):
                raise
            raise type(exc)(f"{request.method} {request.url.host}: {exc}") from None

    def _read(self, request: httpx.Request, response: httpx.Response, hops: int) -> GuardedResponse:
        cap = self.max_response_bytes
        host = request.url.host
        try:
            declared = int(response.headers.get("content-length", "-1"))
        except ValueError:
            declared = -1
        too_large = (f"the response from {host} is over the {cap:,}-byte limit; stopped reading; "
                     "ask for less (a filter, a smaller page)")

        def received() -> Iterator[bytes]:
            size = 0
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > cap:  # also on the wire: data that decodes to little still costs time to read
                    raise ResponseTooLargeError(too_large)
                yield chunk

        try:
            if declared > cap:
                raise ResponseTooLargeError(
                    f"the response from {host} is {declared:,} bytes, over the {cap:,}-byte limit; "
                    "ask for less (a filter, a smaller page)"
                )
            chunks: list[bytes] = []
            size = 0
            # decoded a step at a time: the cap stops a compressed body before it has grown past cap + one step
            for piece in decoded(received(), response.headers.get("content-encoding", "")):
                size += len(piece)
                if size > cap:
                    raise ResponseTooLargeError(too_large)
                chunks.append(piece)
        except RequestTimeoutError:
            raise RequestTimeoutError(f"the response from {host} took longer than {self.timeout:g} s") from None
        except ContentDecodingError as exc:
            raise NetworkError(f"cannot decode the response from {host}: {exc}") from None
        finally:
            response.close()
        return GuardedResponse(response.status_code, str(request.url), response.headers, b"".join(chunks), hops)

    def _redirected(self, request: httpx.Request, status: int, location: str) -> httpx.Request:
        try:
            target = request.url.join(location)
        except httpx.InvalidURL as exc:
            raise NetworkError(f"bad redirect from {request.url.host} to {location!r}: {exc}") from None
        target = target.copy_with(fragment=None)
        method = request.method
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method = "GET"
        same_origin = (target.scheme, target.host, target.port) == (request.url.scheme, request.url.host,
                                                                     request.url.port)
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() != "host" and (same_origin or name.lower() in _KEPT_ACROSS_ORIGINS)
        }
        if method != request.method:
            for name in ("content-type", "content-length", "transfer-encoding"):
                headers.pop(name, None)
            return httpx.Request(method, target, headers=headers)
        headers.pop("content-length", None)
        return httpx.Request(method, target, headers=headers, content=request.read() or None)


def guarded_client(*, allow_private: bool, allowed_hosts: set[str] | None = None, timeout: float = 15.0,
                   max_response_bytes: int = 1_000_000) -> GuardedClient:
    """A client that refuses private/metadata addresses (unless allowed), checks every redirect and caps bodies."""
    return GuardedClient(allow_private=allow_private, allowed_hosts=allowed_hosts, timeout=timeout,
                         max_response_bytes=max_response_bytes)
