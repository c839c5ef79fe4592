"""Host and origin rules: which `Host` names the server answers, loopback names, and same-origin checks."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ..errors import InputError

# Loopback names a browser on this machine may use; the default allow-list (any port).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1), with or without IPv6 brackets."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host: str) -> str:
    """The name in a `Host` value, lower-cased and without its port (`[::1]:7860` → `[::1]`)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    if host.count(":") > 1:  # a bare IPv6 address, as an operator may write it
        return f"[{host}]"
    return host.partition(":")[0]


def parse_hosts(text: str) -> tuple[str, ...]:
    """A comma-separated allow-list: names or addresses, any port; `*.example.com` for subdomains, `*` for any."""
    hosts: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if "/" in item or " " in item or (item.startswith("*") and item != "*" and not item.startswith("*.")):
            raise InputError(f"allowed host {item!r}: give a host name or address such as example.com, *.example.com or *")
        hosts.append(item if item in ("*",) or item.startswith("*.") else host_name(item))
    if not hosts:
        raise InputError("the allowed hosts list is empty: give at least one host name, or * for any")
    return tuple(dict.fromkeys(hosts))


def default_hosts(bound: str) -> tuple[str, ...]:
    """Loopback names plus the address `serve` listens on (unless it is a wildcard such as 0.0.0.0)."""
    bound_name = host_name(bound)
    if bound_name in ("0.0.0.0", "[::]", ""):
        return LOOPBACK_HOSTS
    return tuple(dict.fromkeys([*LOOPBACK_HOSTS, bound_name]))


def host_allowed(host: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a request's `Host` value names one of ``allowed`` (port ignored)."""
    if "*" in allowed:
        return True
    if not host:
        return False
    name = host_name(host)
    for pattern in allowed:
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]) and name != pattern[2:]:
                return True
        elif name == pattern.lower():
            return True
    return False


def same_origin(url: str, host: str | None) -> bool:
    """Whether an `Origin` or `Referer` URL points at the host the request was sent to (scheme and port included via Host)."""
    if not host:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (sandboxed frames, file pages) and odd schemes are never this server
    netloc = parts.netloc.rpartition("@")[2].lower()
    default_port = {"http": ":80", "https": ":443"}[parts.scheme]
    return netloc.removesuffix(default_port) == host.strip().lower().removesuffix(default_port)
