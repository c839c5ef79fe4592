"""Keys with roles (variables and the keys file), and the store's signed sign-in sessions."""

from __future__ import annotations

import time

import pytest
from starlette.requests import Request

from gptbuilder.access import Role
from gptbuilder.db import Database
from gptbuilder.errors import InputError
from gptbuilder.server.auth import SESSION_COOKIE, KeyChecker, key_id
from gptbuilder.server.config import ServerConfig
from gptbuilder.server.errors import APIError
from gptbuilder.server.signing import Signer

ENV = ("GPTBUILDER_API_KEYS", "GPTBUILDER_BUILDER_API_KEYS", "GPTBUILDER_ADMIN_API_KEYS", "GPTBUILDER_API_KEYS_FILE")


@pytest.fixture(autouse=True)
def no_keys_in_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def request(headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw, "client": (host, 1234)})


def test_each_variable_gives_its_role_and_the_highest_role_wins(monkeypatch, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# team\nsk-file-user\nsk-file-builder  builder  # Ana\nsk-file-admin ADMIN\n\nsk-both builder\n")
    monkeypatch.setenv("GPTBUILDER_API_KEYS", "sk-user,sk-both")
    monkeypatch.setenv("GPTBUILDER_BUILDER_API_KEYS", "sk-builder")
    monkeypatch.setenv("GPTBUILDER_ADMIN_API_KEYS", "sk-admin")
    monkeypatch.setenv("GPTBUILDER_API_KEYS_FILE", str(keys))
    roles = ServerConfig.from_env().roles()
    assert roles == {
        "sk-user": Role.USER, "sk-both": Role.BUILDER, "sk-file-user": Role.USER, "sk-file-builder": Role.BUILDER,
        "sk-file-admin": Role.ADMIN, "sk-builder": Role.BUILDER, "sk-admin": Role.ADMIN,
    }


@pytest.mark.parametrize("line", ["sk-1 owner", "sk-1 builder extra", "sk-1 user,admin"])
def test_a_bad_keys_file_line_is_named_and_the_key_is_not(monkeypatch, tmp_path, line):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"sk-ok\n{line}\n")
    monkeypatch.setenv("GPTBUILDER_API_KEYS_FILE", str(keys))
    with pytest.raises(InputError, match="line 2: write a key and optionally its role") as caught:
        ServerConfig.from_env()
    assert "sk-1" not in str(caught.value)


def test_callers_carry_their_role():
    checker = KeyChecker(ServerConfig(api_keys=("u", "b", "a"), builder_keys=("b",), admin_keys=("a",)))
    roles = {k: checker.caller(request({"Authorization": f"Bearer {k}"})).role for k in ("u", "b", "a")}
    assert roles == {"u": Role.USER, "b": Role.BUILDER, "a": Role.ADMIN}
    builder = checker.caller(request({"x-api-key": "b"}))
    assert builder.identity.owner == f"key:{key_id('b')}" and builder.identity.keyed and not builder.admin
    with pytest.raises(APIError) as refused:
        checker.caller(request({"Authorization": "Bearer nope"}))
    assert refused.value.status == 401 and refused.value.headers["WWW-Authenticate"] == 'Bearer realm="gptbuilder"'


def test_without_keys_only_a_loopback_host_is_admin():
    checker = KeyChecker(ServerConfig())
    assert checker.caller(request({"host": "localhost:8000"})).role is Role.ADMIN
    visitor = checker.caller(request({"host": "shop.example"}))
    assert visitor.role is Role.USER and not visitor.identity.keyed


@pytest.fixture
def signer(tmp_path):
    db = Database.for_data_dir(tmp_path / "data")
    yield Signer(db, "test-session-key")
    db.dispose()


def test_a_session_stands_for_its_key_until_it_expires_or_the_key_goes(signer):
    config = ServerConfig(api_keys=("u", "b"), builder_keys=("b",), session_seconds=60)
    checker = KeyChecker(config, sessions=signer)
    caller, token = checker.signed_in("b", "10.0.0.1")
    assert caller.role is Role.BUILDER and "b" not in token.split(".")[0]  # the cookie holds the key's id, not the key
    again = checker.caller(request({"cookie": f"{SESSION_COOKIE}={token}"}))
    assert again.key_id == key_id("b") and again.role is Role.BUILDER
    removed = KeyChecker(ServerConfig(api_keys=("u",)), sessions=signer)  # the operator removed key "b"
    with pytest.raises(APIError, match="sign in again"):
        removed.caller(request({"cookie": f"{SESSION_COOKIE}={token}"}))
    expired = signer.sign({"k": key_id("b"), "e": int(time.time()) - 1})
    with pytest.raises(APIError, match="expired"):
        checker.caller(request({"cookie": f"{SESSION_COOKIE}={expired}"}))


@pytest.mark.parametrize("cookie", ["garbage", "a.b", "é.é", "{}.sig"])
def test_a_forged_or_broken_session_is_a_401(signer, cookie):
    checker = KeyChecker(ServerConfig(api_keys=("u",)), sessions=signer)
    _, token = checker.signed_in("u", "10.0.0.1")
    payload, signature = token.split(".")
    forged = Signer(signer.db, "another-key").sign({"k": key_id("u"), "e": int(time.time()) + 60})
    for bad in (cookie, f"{payload}.{signature[:-2]}xx", forged):
        with pytest.raises(APIError) as refused:
            checker.caller(request({"cookie": f"{SESSION_COOKIE}={bad}"}))
        assert refused.value.status == 401


def test_a_wrong_key_on_the_sign_in_page_is_a_401(signer):
    checker = KeyChecker(ServerConfig(api_keys=("u",)), sessions=signer)
    with pytest.raises(APIError) as refused:
        checker.signed_in("not-the-key", "10.0.0.1")
    assert refused.value.status == 401
