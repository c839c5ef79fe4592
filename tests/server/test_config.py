"""Server settings from the environment: keys, keys file, prices; bad files are clear errors."""

from __future__ import annotations

import pytest

from gptbuilder.errors import InputError
from gptbuilder.server.config import Price, ServerConfig


def test_keys_from_variable_and_file(monkeypatch, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# team keys\nsk-file-1\n\n  sk-file-2  \n", encoding="utf-8")
    monkeypatch.setenv("GPTBUILDER_API_KEYS", "sk-a, sk-b,,")
    monkeypatch.setenv("GPTBUILDER_API_KEYS_FILE", str(keys))
    monkeypatch.setenv("GPTBUILDER_ADMIN_API_KEYS", "sk-admin")
    config = ServerConfig.from_env()
    assert config.api_keys == ("sk-a", "sk-b", "sk-file-1", "sk-file-2", "sk-admin")
    assert config.admin_keys == ("sk-admin",) and config.auth_required


def test_no_keys_means_open(monkeypatch):
    monkeypatch.delenv("GPTBUILDER_API_KEYS", raising=False)
    monkeypatch.delenv("GPTBUILDER_API_KEYS_FILE", raising=False)
    assert not ServerConfig.from_env().auth_required


def test_missing_keys_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("GPTBUILDER_API_KEYS_FILE", str(tmp_path / "nope.txt"))
    with pytest.raises(InputError, match="cannot read the API keys file"):
        ServerConfig.from_env()


def test_price_table(monkeypatch, tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("echo: {prompt_per_1k: 0.5, completion_per_1k: 1}\n'*': {completion_per_1k: 2}\n", encoding="utf-8")
    monkeypatch.setenv("GPTBUILDER_PRICES_FILE", str(prices))
    assert ServerConfig.from_env().prices == {"echo": Price(0.5, 1.0), "*": Price(0.0, 2.0)}


@pytest.mark.parametrize("text", ["echo: {prompt: 1}\n", "echo: {prompt_per_1k: lots}\n", "- 1\n", "echo: [\n"])
def test_bad_price_table(monkeypatch, tmp_path, text):
    prices = tmp_path / "prices.yaml"
    prices.write_text(text, encoding="utf-8")
    monkeypatch.setenv("GPTBUILDER_PRICES_FILE", str(prices))
    with pytest.raises(InputError):
        ServerConfig.from_env()


def test_rate_limit_storage_from_the_environment(monkeypatch, make_app, echo):
    monkeypatch.setenv("GPTBUILDER_RATE_LIMIT_STORAGE", "memory://")
    assert ServerConfig.from_env().limits_storage == "memory://"
    with pytest.raises(InputError, match="cannot use the rate-limit storage 'bogus://x'"):
        make_app(ServerConfig(limits_storage="bogus://x"))


def test_allowed_hosts_from_the_environment(monkeypatch):
    from gptbuilder.server.origins import LOOPBACK_HOSTS

    monkeypatch.setenv("GPTBUILDER_ALLOWED_HOSTS", "")
    assert ServerConfig.from_env().allowed_hosts == LOOPBACK_HOSTS
    monkeypatch.setenv("GPTBUILDER_ALLOWED_HOSTS", "Store.Example:8443, *.shop.example, ::1")
    assert ServerConfig.from_env().allowed_hosts == ("store.example", "*.shop.example", "[::1]")
    monkeypatch.setenv("GPTBUILDER_ALLOWED_HOSTS", "http://store.example/")
    with pytest.raises(InputError, match="host name or address"):
        ServerConfig.from_env()


def test_the_citations_default_from_the_environment(monkeypatch):
    monkeypatch.delenv("GPTBUILDER_CITATIONS", raising=False)
    assert ServerConfig.from_env().citations == "field"
    monkeypatch.setenv("GPTBUILDER_CITATIONS", " Inline ")
    assert ServerConfig.from_env().citations == "inline"
    monkeypatch.setenv("GPTBUILDER_CITATIONS", "footnotes")
    with pytest.raises(InputError, match="GPTBUILDER_CITATIONS: 'footnotes' is not a citations mode; use one of off, field, inline"):
        ServerConfig.from_env()
