"""Host and origin rules: Host names with ports and IPv6, wildcards, same-origin Origin and Referer values."""

from __future__ import annotations

import pytest

from gptbuilder.server.origins import LOOPBACK_HOSTS, default_hosts, host_allowed, host_name, same_origin


@pytest.mark.parametrize(
    ("host", "name"),
    [("localhost:7860", "localhost"), ("[::1]:7860", "[::1]"), ("[::1]", "[::1]"), ("::1", "[::1]"), ("Ex.COM", "ex.com")],
)
def test_host_name(host, name):
    assert host_name(host) == name


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("localhost:7860", True), ("127.0.0.1", True), ("[::1]:80", True), ("evil.example", False), (None, False),
     ("localhost.evil.example", False), ("127.0.0.1.nip.io", False)],
)
def test_loopback_allow_list(host, allowed):
    assert host_allowed(host, LOOPBACK_HOSTS) is allowed


def test_wildcards():
    assert host_allowed("a.shop.example:443", ("*.shop.example",))
    assert not host_allowed("shop.example", ("*.shop.example",))
    assert not host_allowed("evilshop.example", ("*.shop.example",))
    assert host_allowed("anything", ("*",))


def test_default_hosts_add_the_bound_address():
    assert default_hosts("10.0.0.5") == (*LOOPBACK_HOSTS, "10.0.0.5")
    assert default_hosts("::") == LOOPBACK_HOSTS and default_hosts("127.0.0.1") == LOOPBACK_HOSTS


@pytest.mark.parametrize(
    ("url", "host", "same"),
    [("http://localhost:7860", "localhost:7860", True), ("https://store.example", "store.example", True),
     ("https://store.example:443/create?x=1", "store.example", True), ("http://localhost:7861", "localhost:7860", False),
     ("https://attacker.example", "store.example", False), ("null", "store.example", False),
     ("http://store.example@attacker.example/", "store.example", False), ("http://localhost:7860", None, False)],
)
def test_same_origin(url, host, same):
    assert same_origin(url, host) is same
