"""`gptbuilder serve`: refuses to expose GPTs on the network without keys; starts uvicorn otherwise."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gptbuilder.cli import app
from gptbuilder.server.origins import is_loopback

runner = CliRunner()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True), ("0.0.0.0", False), ("192.168.1.5", False),
     ("example.com", False)],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_refuses_a_public_host_without_keys(monkeypatch):
    monkeypatch.delenv("GPTBUILDER_API_KEYS", raising=False)
    calls = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: calls.append((a, k)))
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0 without API keys" in result.output and "--insecure" in result.output
    assert calls == []


@pytest.mark.parametrize(
    ("args", "env"), [(["--host", "0.0.0.0", "--insecure"], {}), (["--host", "0.0.0.0"], {"GPTBUILDER_API_KEYS": "sk-1"}), ([], {})]
)
def test_starts_uvicorn_with_the_app_factory(monkeypatch, tmp_path, args, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    calls = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: calls.append((a, k)))
    result = runner.invoke(app, ["--gpts", str(tmp_path / "g"), "serve", "--port", "8123", "--workers", "2", *args])
    assert result.exit_code == 0, result.output
    [(positional, options)] = calls
    assert positional == ("gptbuilder.server.app:app_from_env",) and options["factory"] is True
    assert options["port"] == 8123 and options["workers"] == 2


def test_app_from_env_builds_the_store_app(monkeypatch, tmp_path, write_spec):
    from fastapi.testclient import TestClient

    from gptbuilder.server.app import app_from_env

    write_spec("echo", "name: Echo\ninstructions: x\nmodel: {provider: fake}\n")
    client = TestClient(app_from_env(), base_url="http://localhost")
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["echo"]
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    ("args", "env", "hosts"),
    [
        ([], "", "localhost,127.0.0.1,[::1]"),
        (["--host", "192.168.1.5", "--insecure"], "", "localhost,127.0.0.1,[::1],192.168.1.5"),
        (["--host", "0.0.0.0", "--insecure"], "", "localhost,127.0.0.1,[::1]"),  # a wildcard names no host
        (["--allowed-hosts", "gpts.example.com,localhost"], "", "gpts.example.com,localhost"),
        ([], "gpts.example.com", "gpts.example.com"),
    ],
)
def test_allowed_hosts_reach_the_workers(monkeypatch, tmp_path, args, env, hosts):
    monkeypatch.setenv("GPTBUILDER_ALLOWED_HOSTS", env)  # restored after the test; serve sets it for its workers
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: None)
    result = runner.invoke(app, ["--gpts", str(tmp_path / "g"), "serve", *args])
    assert result.exit_code == 0, result.output
    import os

    assert os.environ["GPTBUILDER_ALLOWED_HOSTS"] == hosts
    assert f"answering the hosts {hosts.replace(',', ', ')}" in result.output


def test_a_malformed_allowed_host_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("GPTBUILDER_ALLOWED_HOSTS", "")
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: None)
    result = runner.invoke(app, ["--gpts", str(tmp_path / "g"), "serve", "--allowed-hosts", "https://x.example/"])
    assert result.exit_code == 1 and "host name or address" in result.output


def test_citations_reach_the_workers_and_a_bad_mode_is_a_clear_error(monkeypatch, tmp_path):
    import os

    monkeypatch.setenv("GPTBUILDER_CITATIONS", "field")  # restored after the test; serve sets it for its workers
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: None)
    result = runner.invoke(app, ["--gpts", str(tmp_path / "g"), "serve", "--citations", "inline"])
    assert result.exit_code == 0, result.output
    assert os.environ["GPTBUILDER_CITATIONS"] == "inline"
    result = runner.invoke(app, ["--gpts", str(tmp_path / "g"), "serve", "--citations", "links"])
    assert result.exit_code == 1 and "--citations: 'links' is not a citations mode" in result.output
