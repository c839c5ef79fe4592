"""The SSRF guard: refused addresses, checked redirects, one DNS lookup per connection, caps, timeouts.

Only loopback servers answer here. Names like internal.example resolve through a patched
`socket.getaddrinfo`, and a patched `socket.create_connection` records every connection the
guard opens and fails the test at once if one goes anywhere but loopback.
"""

from __future__ import annotations

import gzip
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gptbuilder.errors import ToolError
from gptbuilder.tools.network import (
    BlockedRequestError,
    NetworkError,
    RequestTimeoutError,
    ResponseTooLargeError,
    address_problem,
    guarded_client,
)

Handler = Callable[[BaseHTTPRequestHandler], None]


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 whose routes are plain functions of the request handler."""

    def __init__(self, routes: dict[str, Handler]):
        self.routes = routes
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.release = threading.Event()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _dispatch(self) -> None:
                server.seen.append((self.command, self.path, dict(self.headers)))
                route = server.routes.get(self.path.split("?")[0])
                if route is None:
                    reply(self, 404, b"not found")
                else:
                    route(self)

            do_GET = do_POST = _dispatch

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"",
          headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def serve() -> Iterator[Callable[[dict[str, Handler]], LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def start(routes: dict[str, Handler]) -> LoopbackServer:
        servers.append(LoopbackServer(routes))
        return servers[-1]

    yield start
    for server in servers:
        server.close()



class FakeDNS:
    """Answers for some names; a name given a list of lists answers with the next list each time."""

    def __init__(self) -> None:
        self.answers: dict[str, list] = {}
        self.lookups: list[str] = []

    def __setitem__(self, name: str, addresses: list) -> None:
        self.answers[name] = addresses


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS()
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        dns.lookups.append(host)
        if host not in dns.answers:
            return real(host, port, *args, **kwargs)
        entries = dns.answers[host]
        addresses = entries.pop(0) if entries and isinstance(entries[0], list) else entries
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return dns


def ok(body: bytes = b"hello") -> Handler:
    return lambda h: reply(h, 200, body, {"Content-Type": "text/plain; charset=utf-8"})


def redirect(location: str, status: int = 302) -> Handler:
    return lambda h: reply(h, status, b"", {"Location": location})


# -- refused addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, what",
    [
        ("http://127.0.0.1:9/", "loopback"),
        ("http://localhost:9/", "loopback"),
        ("http://[::1]:9/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://0.0.0.0:9/", "unspecified"),
        ("http://[::ffff:127.0.0.1]:9/", "loopback"),
        ("http://224.0.0.1/", "multicast"),
    ],
)
def test_refuses_local_and_metadata_addresses(url: str, what: str, connections: list[str]) -> None:
    with guarded_client(allow_private=False) as client, pytest.raises(BlockedRequestError, match=what):
        client.get(url)
    assert connections == []


def test_a_name_resolving_to_a_private_address_is_refused_before_connecting(fake_dns, connections) -> None:
    fake_dns["internal.example"] = ["10.0.0.5"]
    with guarded_client(allow_private=False) as client, pytest.raises(BlockedRequestError) as caught:
        client.get("http://internal.example/admin")
    assert "internal.example (10.0.0.5)" in str(caught.value)
    assert "private" in str(caught.value) and "allow_private_network" in str(caught.value)
    assert connections == []


def test_a_name_with_any_private_address_among_public_ones_is_refused(fake_dns, connections) -> None:
    fake_dns["mixed.example"] = ["93.184.215.14", "10.0.0.5"]
    with guarded_client(allow_private=False) as client, pytest.raises(BlockedRequestError, match=r"10\.0\.0\.5"):
        client.get("http://mixed.example/")
    assert connections == []


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2"])
def test_metadata_addresses_stay_refused_when_private_networks_are_allowed(address: str, fake_dns, connections) -> None:
    fake_dns["metadata.example"] = [address]
    with guarded_client(allow_private=True) as client, pytest.raises(BlockedRequestError, match="metadata"):
        client.get("http://metadata.example/")
    assert connections == []


def test_address_rules() -> None:
    ip = ipaddress.ip_address
    assert address_problem(ip("93.184.215.14"), allow_private=False) is None
    assert address_problem(ip("2606:4700::1111"), allow_private=False) is None
    assert address_problem(ip("100.64.1.1"), allow_private=False)  # carrier-grade NAT, not public
    assert address_problem(ip("2002:7f00:1::1"), allow_private=False)  # 6to4 wrapping 127.0.0.1
    assert address_problem(ip("64:ff9b::a00:5"), allow_private=False)  # NAT64 wrapping 10.0.0.5
    assert address_problem(ip("64:ff9b:1::a00:5"), allow_private=False) == "a private-network address"  # RFC 8215
    assert address_problem(ip("64:ff9b:1::a9fe:a9fe"), allow_private=True) == "a cloud metadata address"
    assert address_problem(ip("10.0.0.5"), allow_private=True) is None
    assert address_problem(ip("fd00:ec2::254"), allow_private=True) == "a cloud metadata address"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1:70/"])
def test_only_http_and_https(url: str) -> None:
    with guarded_client(allow_private=True) as client, pytest.raises(BlockedRequestError, match="only http"):
        client.get(url)


def test_allowed_hosts(serve, connections) -> None:
    server = serve({"/": ok()})
    with guarded_client(allow_private=True, allowed_hosts={"127.0.0.1"}) as client:
        assert client.get(server.url + "/").text == "hello"
    port = server.url.rsplit(":", 1)[1]
    with (
        guarded_client(allow_private=True, allowed_hosts={"api.example"}) as client,
        pytest.raises(BlockedRequestError, match="not an allowed host"),
    ):
        client.get(f"http://localhost:{port}/")
    assert connections == ["127.0.0.1"]


def test_errors_are_tool_errors() -> None:
    assert issubclass(BlockedRequestError, NetworkError) and issubclass(NetworkError, ToolError)


# -- allowed requests and DNS rebinding ----------------------------------------------------------------


def test_loopback_works_when_private_networks_are_allowed(serve) -> None:
    server = serve({"/": ok("héllo".encode())})
    with guarded_client(allow_private=True) as client:
        response = client.get(server.url + "/")
    assert response.status_code == 200 and response.text == "héllo" and response.is_success


def test_connects_to_the_address_it_checked_with_the_name_as_host_header(serve, fake_dns, connections) -> None:
    server = serve({"/": lambda h: reply(h, 200, h.headers["Host"].encode())})
    port = server.url.rsplit(":", 1)[1]
    # a rebinding DNS server: the first answer passes the check, later ones point inside the network
    fake_dns["shop.example"] = [["127.0.0.1"], ["10.0.0.5"], ["10.0.0.5"]]
    with guarded_client(allow_private=True) as client:
        response = client.get(f"http://shop.example:{port}/")
    assert response.text == f"shop.example:{port}"
    assert connections == ["127.0.0.1"]
    assert fake_dns.lookups.count("shop.example") == 1


def test_a_refused_port_is_a_readable_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with guarded_client(allow_private=True, timeout=2) as client, pytest.raises(NetworkError, match="connection failed"):
        client.get(f"http://127.0.0.1:{port}/")


# -- redirects -----------------------------------------------------------------------------------------


def test_redirects_are_followed_and_each_hop_checked(serve, connections) -> None:
    server = serve({"/start": redirect("/middle"), "/middle": redirect("/end", 307), "/end": ok(b"done")})
    with guarded_client(allow_private=True) as client:
        response = client.get(server.url + "/start")
    assert response.text == "done" and response.redirects == 2
    assert response.url.endswith("/end")


def test_redirect_to_a_host_that_is_not_allowed_is_refused_before_connecting(serve, fake_dns, connections) -> None:
    fake_dns["internal.example"] = ["10.0.0.5"]
    server = serve({"/": redirect("http://internal.example/")})
    with (
        guarded_client(allow_private=True, allowed_hosts={"127.0.0.1"}) as client,
        pytest.raises(BlockedRequestError, match=r"internal\.example: not an allowed host"),
    ):
        client.get(server.url + "/")
    assert connections == ["127.0.0.1"]  # the loopback hop only
    assert "internal.example" not in fake_dns.lookups


def test_redirect_to_a_metadata_address_is_refused_even_with_private_networks_allowed(serve, fake_dns,
                                                                                       connections) -> None:
    fake_dns["metadata.example"] = ["169.254.169.254"]
    server = serve({"/": redirect("http://metadata.example/latest/meta-data/iam/")})
    with guarded_client(allow_private=True) as client, pytest.raises(BlockedRequestError, match="metadata"):
        client.get(server.url + "/")
    assert connections == ["127.0.0.1"]
    assert "metadata.example" in fake_dns.lookups  # the hop was resolved and checked


def test_too_many_redirects(serve) -> None:
    server = serve({"/loop": redirect("/loop")})
    with guarded_client(allow_private=True) as client, pytest.raises(NetworkError, match="too many redirects"):
        client.get(server.url + "/loop")
    assert len(server.seen) == 6  # the first request and five redirects


def test_cross_origin_redirect_drops_credentials_and_303_switches_to_get(serve) -> None:
    target = serve({"/landing": ok(b"landed")})
    target_port = target.url.rsplit(":", 1)[1]
    source = serve({"/submit": redirect(f"http://localhost:{target_port}/landing", 303)})
    with guarded_client(allow_private=True) as client:
        response = client.request("POST", source.url + "/submit", json={"a": 1},
                                  headers={"Authorization": "Bearer secret", "X-API-Key": "k"})
    assert response.text == "landed"
    method, _, headers = target.seen[0]
    assert method == "GET"
    assert "Authorization" not in headers and "X-API-Key" not in headers


# -- size cap and timeouts -----------------------------------------------------------------------------


def test_a_declared_length_over_the_cap_is_refused_without_reading(serve) -> None:
    server = serve({"/big": ok(b"x" * 50_000)})
    with (
        guarded_client(allow_private=True, max_response_bytes=10_000) as client,
        pytest.raises(ResponseTooLargeError, match="50,000 bytes, over the 10,000-byte limit"),
    ):
        client.get(server.url + "/big")


def test_a_streamed_body_is_cut_at_the_cap(serve) -> None:
    def chunked(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for _ in range(100):
            h.wfile.write(b"1000\r\n" + b"y" * 4096 + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")

    server = serve({"/stream": chunked, "/small": chunked})
    with (
        guarded_client(allow_private=True, max_response_bytes=100_000) as client,
        pytest.raises(ResponseTooLargeError, match="over the 100,000-byte limit; stopped reading"),
    ):
        client.get(server.url + "/stream")
    with guarded_client(allow_private=True, max_response_bytes=500_000) as client:
        assert len(client.get(server.url + "/small").content) == 409_600


def test_a_hanging_server_times_out(serve) -> None:
    server = serve({"/hang": lambda h: server.release.wait(10)})
    started = time.monotonic()
    with (
        guarded_client(allow_private=True, timeout=0.5) as client,
        pytest.raises(RequestTimeoutError, match=r"no answer from 127.0.0.1 within 0.5 s"),
    ):
        client.get(server.url + "/hang")
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("route, says", [("/body", "the response from 127.0.0.1 took longer than 1 s"),
                                         ("/headers", "no answer from 127.0.0.1 within 1 s")])
def test_a_trickling_server_is_bounded_by_the_total_timeout(serve, route: str, says: str) -> None:
    # a byte or a header line every 0.1 s: each read is quick, the whole is not
    def trickle_body(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        drip(h, [b"z"] * 1000)

    def drip_headers(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        drip(h, [f"X-Slow-{n}: y\r\n".encode() for n in range(100)])

    def drip(h: BaseHTTPRequestHandler, pieces: list[bytes]) -> None:
        for piece in pieces:
            if server.release.wait(0.1):
                return
            h.wfile.write(piece)
            h.wfile.flush()

    server = serve({"/body": trickle_body, "/headers": drip_headers})
    started = time.monotonic()
    with guarded_client(allow_private=True, timeout=1.0) as client, pytest.raises(RequestTimeoutError, match=re.escape(says)):
        client.get(server.url + route)
    assert time.monotonic() - started < 3


# -- content codings -----------------------------------------------------------------------------------


def test_identity_is_asked_for_and_a_compressed_body_sent_anyway_is_decoded(serve) -> None:
    page = b"<p>Returns within 30 days.</p>" * 100
    server = serve({"/": lambda h: reply(h, 200, gzip.compress(page),
                                         {"Content-Type": "text/html", "Content-Encoding": "gzip"})})
    with guarded_client(allow_private=True) as client:
        response = client.get(server.url + "/")
    assert response.content == page
    assert server.seen[0][2]["Accept-Encoding"] == "identity"


def test_the_cap_applies_to_the_decoded_size(serve) -> None:
    body = gzip.compress(b"a" * 50_000)
    server = serve({"/": lambda h: reply(h, 200, body, {"Content-Encoding": "gzip"})})
    with guarded_client(allow_private=True, max_response_bytes=10_000) as client:
        assert len(body) < 10_000
        with pytest.raises(ResponseTooLargeError, match="over the 10,000-byte limit; stopped reading"):
            client.get(server.url + "/")


def test_a_corrupt_compressed_body_is_a_readable_error(serve) -> None:
    server = serve({"/": lambda h: reply(h, 200, b"not gzip at all", {"Content-Encoding": "gzip"})})
    with (
        guarded_client(allow_private=True) as client,
        pytest.raises(NetworkError, match=r"cannot decode the response from 127\.0\.0\.1: the gzip body is corrupt"),
    ):
        client.get(server.url + "/")
