"""Fixtures shared by the tools tests."""

from __future__ import annotations

import ipaddress
import socket

import pytest


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address a tool connects to; anything but loopback fails the test before a packet leaves."""
    opened: list[str] = []
    real = socket.create_connection

    def spy(address, *args, **kwargs):
        opened.append(address[0])
        assert ipaddress.ip_address(address[0]).is_loopback, f"test tried to connect to {address[0]}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    return opened
