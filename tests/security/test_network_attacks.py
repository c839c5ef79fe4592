"""The network guard against hostile servers (issue 12, item 7): compression bombs, slow servers, NAT64 prefixes.

Every server here is a raw TCP server on 127.0.0.1 that answers byte by byte as an attacker's server would,
whatever the request asked for. The tools are reached the way a GPT reaches them: `fetch_url` and an
OpenAPI action, with private networks allowed so that loopback may be contacted at all.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import brotli
import pytest
import yaml
import zstandard
from langchain_core.tools import BaseTool

from gptbuilder.spec import ActionConfig
from gptbuilder.tools.actions import action_tools
from gptbuilder.tools.builtin import builtin_tool
from gptbuilder.tools.network import BlockedRequestError, RequestTimeoutError, address_problem, guarded_client

Behaviour = Callable[[socket.socket, threading.Event], None]

CAP = 100_000  # the byte cap every tool gets in these tests
BOMB_SIZE = 64 * 1024 * 1024  # what each bomb decodes to (gzip: 64 KB on the wire)
MEMORY_BOUND = 8 * 1024 * 1024  # what reading one may cost: far below the bomb, well above the cap


class RawServer:
    """A loopback TCP server: reads each request's head, records it, then `behaviour` answers on the socket."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.heads: list[str] = []
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
                self.heads.append(head.decode("latin-1"))
                self.behaviour(conn, self.stop)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Callable[[Behaviour], RawServer]]:
    started: list[RawServer] = []

    def start(behaviour: Behaviour) -> RawServer:
        started.append(RawServer(behaviour))
        return started[-1]

    yield start
    for raw_server in started:
        raw_server.close()


def fetch_url(**options) -> BaseTool:
    return builtin_tool("fetch_url", {"max_bytes": CAP, **options}, allow_private=True)


def action(folder: Path, url: str, **config) -> BaseTool:
    """An OpenAPI action with one GET operation, `getThing`, on the server at `url`."""
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "Hostile", "version": "1"},
        "servers": [{"url": url}],
        "paths": {"/thing": {"get": {"operationId": "getThing", "responses": {"200": {"description": "ok"}}}}},
    }
    (folder / "hostile.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    (tool,) = action_tools(ActionConfig(openapi="hostile.yaml", max_response_bytes=CAP, **config),
                           spec_folder=folder, allow_private=True)
    return tool


# -- compression bombs ---------------------------------------------------------------------------------


def _compressed_zeros(compressor: Callable[[bytes], bytes], finish: Callable[[], bytes]) -> bytes:
    block = bytes(1024 * 1024)
    return b"".join(compressor(block) for _ in range(BOMB_SIZE // len(block))) + finish()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """64 MiB of zeros in each coding (built without ever holding the 64 MiB)."""
    gzip = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    br = brotli.Compressor(quality=5)
    zstd = zstandard.ZstdCompressor(level=3).compressobj()
    return {
        "br": _compressed_zeros(br.process, br.finish),
        "zstd": _compressed_zeros(zstd.compress, zstd.flush),
        "gzip": _compressed_zeros(gzip.compress, gzip.flush),
    }


def sends(coding: str, body: bytes) -> Behaviour:
    """Answers with ``body`` in ``coding``, whatever Accept-Encoding said."""

    def behaviour(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: {coding}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)

    return behaviour


def peak_memory_of(call: Callable[[], str]) -> tuple[str, int]:
    """What ``call`` returned and the most memory Python held at once while it ran, above what it held before."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = call()
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip"])
def test_a_compression_bomb_through_fetch_url_is_stopped_at_the_cap(coding: str, bombs, server) -> None:
    bomb = bombs[coding]
    assert len(bomb) < CAP  # small on the wire: only its decoded size is over the cap
    target = server(sends(coding, bomb))
    answer, peak = peak_memory_of(lambda: fetch_url().invoke({"url": target.url + "/"}))
    assert "over the 100,000-byte limit; stopped reading" in answer
    assert peak < MEMORY_BOUND, f"reading a {len(bomb):,}-byte {coding} body held {peak:,} bytes"
    assert "accept-encoding: identity" in target.heads[0].lower()


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip"])
def test_a_compression_bomb_through_an_action_is_stopped_at_the_cap(coding: str, bombs, server,
                                                                    tmp_path: Path) -> None:
    target = server(sends(coding, bombs[coding]))
    tool = action(tmp_path, target.url)
    answer, peak = peak_memory_of(lambda: tool.invoke({}))
    assert answer.startswith("getThing failed: the response from 127.0.0.1 is over the 100,000-byte limit")
    assert peak < MEMORY_BOUND, f"reading a {coding} bomb held {peak:,} bytes"
    assert "accept-encoding: identity" in target.heads[0].lower()


def test_a_body_in_a_coding_whose_decoder_is_missing_is_refused_not_decoded(bombs, server, monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "brotli", None)  # as on a machine without the package
    target = server(sends("br", bombs["br"]))
    answer, peak = peak_memory_of(lambda: fetch_url().invoke({"url": target.url + "/"}))
    assert "cannot decode the response from 127.0.0.1" in answer and "install the brotli package" in answer
    assert peak < MEMORY_BOUND


def test_a_coding_nobody_decodes_is_refused(server) -> None:
    target = server(sends("compress", b"\x1f\x9d" + bytes(100)))
    answer = fetch_url().invoke({"url": target.url + "/"})
    assert "cannot decode the response from 127.0.0.1" in answer and "'compress' content coding" in answer


# -- slow servers: one deadline from the DNS lookup to the last byte -------------------------------------

TIMEOUT = 0.5
SLACK = 0.7  # scheduling on a loaded machine; a per-read timeout would never fire: each drip comes sooner than it


def drips(prefix: bytes, unit: bytes, interval: float, count: int = 40) -> Behaviour:
    """Sends ``prefix``, then ``unit`` every ``interval`` seconds, ``count`` times (till the test is over)."""

    def behaviour(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(prefix)
        for _ in range(count):
            if stop.wait(interval):
                return
            conn.sendall(unit)

    return behaviour


# 40 drips 0.2 s apart keep a per-read timeout alive for 8 s: the bound below is less than a sixth of that
SLOW_SERVERS = {
    "a header line every 0.2 s": drips(b"HTTP/1.1 200 OK\r\n", b"X-Slow: y\r\n", 0.2),
    "the status line a byte every 0.2 s": drips(b"", b"H", 0.2),
    "the body a byte every 0.2 s": drips(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"z", 0.2),
}


def elapsed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@pytest.mark.parametrize("how", SLOW_SERVERS)
def test_a_slow_server_cannot_stretch_the_timeout(how: str, server) -> None:
    target = server(SLOW_SERVERS[how])

    def get() -> None:
        with guarded_client(allow_private=True, timeout=TIMEOUT) as client, pytest.raises(RequestTimeoutError):
            client.get(target.url + "/")

    _, took = elapsed(get)
    assert took < TIMEOUT + SLACK, f"{how}: the {TIMEOUT} s request took {took:.1f} s"


@pytest.mark.parametrize("how", SLOW_SERVERS)
def test_a_slow_server_cannot_hold_fetch_url_or_an_action(how: str, server, tmp_path: Path) -> None:
    target = server(SLOW_SERVERS[how])
    answer, took = elapsed(lambda: fetch_url(timeout=TIMEOUT).invoke({"url": target.url + "/"}))
    assert "could not fetch" in str(answer) and "0.5 s" in str(answer)
    assert took < TIMEOUT + SLACK, f"fetch_url: {how}: took {took:.1f} s"
    tool = action(tmp_path, target.url, timeout=TIMEOUT)
    answer, took = elapsed(lambda: tool.invoke({}))
    assert str(answer).startswith("getThing failed") and "0.5 s" in str(answer)
    assert took < TIMEOUT + SLACK, f"action: {how}: took {took:.1f} s"


def test_the_deadline_covers_every_redirect_hop(server) -> None:
    # each hop answers in 0.2 s, well within any per-hop timeout, but five of them are not within 0.5 s
    def slow_redirect(conn: socket.socket, stop: threading.Event) -> None:
        if not stop.wait(0.2):
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")

    target = server(slow_redirect)

    def get() -> None:
        with guarded_client(allow_private=True, timeout=TIMEOUT) as client, pytest.raises(RequestTimeoutError):
            client.get(target.url + "/")

    _, took = elapsed(get)
    assert took < TIMEOUT + SLACK and len(target.heads) in (2, 3)


def test_a_slow_dns_answer_cannot_stretch_the_timeout(monkeypatch) -> None:
    real = socket.getaddrinfo
    answer_now = threading.Event()

    def slow_resolver(host, *args, **kwargs):
        if host == "slow-dns.example":
            answer_now.wait(10)  # an authoritative server that answers late
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_resolver)

    def get() -> None:
        with (
            guarded_client(allow_private=True, timeout=TIMEOUT) as client,
            pytest.raises(RequestTimeoutError, match=r"no answer from slow-dns\.example within 0\.5 s"),
        ):
            client.get("http://slow-dns.example:9/")

    try:
        _, took = elapsed(get)
    finally:
        answer_now.set()
    assert took < TIMEOUT + SLACK


# -- NAT64: the RFC 8215 local-use prefix is judged by the IPv4 address it reaches ------------------------


def nat64(prefix: str, ipv4: str, prefix_length: int = 96) -> ipaddress.IPv6Address:
    """``ipv4`` embedded in a NAT64 prefix the way RFC 6052 lays it out for that prefix length."""
    bits = f"{int(ipaddress.ip_address(prefix)):0128b}"
    v4 = f"{int(ipaddress.ip_address(ipv4)):032b}"
    if prefix_length == 96:
        return ipaddress.IPv6Address(int(bits[:96] + v4, 2))
    head = 64 - prefix_length
    laid_out = bits[:prefix_length] + v4[:head] + "0" * 8 + v4[head:]
    return ipaddress.IPv6Address(int(laid_out.ljust(128, "0"), 2))


def test_the_local_use_nat64_prefix_reaching_loopback_is_loopback() -> None:
    address = nat64("64:ff9b:1::", "127.0.0.1")
    assert str(address) == "64:ff9b:1::7f00:1"
    assert address_problem(address, allow_private=False) == "a loopback address"


@pytest.mark.parametrize("prefix_length", [96, 64, 56, 48])
def test_the_local_use_nat64_prefix_reaching_metadata_is_refused_even_with_private_allowed(prefix_length) -> None:
    address = nat64("64:ff9b:1::", "169.254.169.254", prefix_length)
    assert address_problem(address, allow_private=True) == "a cloud metadata address"
    assert address_problem(address, allow_private=False) == "a cloud metadata address"


def test_the_local_use_nat64_prefix_to_a_public_address_is_allowed_where_private_networks_are() -> None:
    address = nat64("64:ff9b:1::", "93.184.215.14")
    assert address_problem(address, allow_private=True) is None
    assert address_problem(address, allow_private=False)  # the prefix itself is not globally reachable


def test_a_name_resolving_into_the_local_use_prefix_is_refused_before_connecting(monkeypatch) -> None:
    opened: list[object] = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b:1::a9fe:a9fe", port, 0, 0))])
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: opened.append(a) or pytest.fail("connected"))
    with guarded_client(allow_private=True) as client, pytest.raises(BlockedRequestError, match="metadata"):
        client.get("http://nat64.example/latest/meta-data/")
    assert opened == []
