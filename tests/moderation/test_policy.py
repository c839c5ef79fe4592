"""A config's checks as they run, and the server-wide default file."""

from __future__ import annotations

import pytest

from gptbuilder.errors import SpecError
from gptbuilder.loader import load_spec
from gptbuilder.moderation import MODERATION_ENV, Moderation, moderation_for, read_moderation_file, server_default
from gptbuilder.spec import DEFAULT_REFUSAL, ModerationConfig


def test_a_config_turns_on_its_checks():
    moderation = Moderation.from_config(
        ModerationConfig(blocklist=["idiot"], patterns={"ticket": r"TCK-\d{4}"}, pii="block", refusal="No.")
    )
    assert [c.name for c in moderation.blocking] == ["blocklist", "regex", "pii"] and moderation.masking is None
    assert moderation.blocked("call me at bob@example.com").category == "email"
    assert moderation.refusal == "No." and moderation.holdback == 65  # PII is the longest
    masking = Moderation.from_config(ModerationConfig(pii="mask"))
    assert masking.masked("bob@example.com") == ("[email]", masking.masking.findings("bob@example.com"))
    assert [(f.category, action) for f, action in masking.scan("x bob@example.com")] == [("email", "masked")]
    assert not Moderation.from_config(ModerationConfig()).active
    assert Moderation.from_config(ModerationConfig()).refusal == DEFAULT_REFUSAL


def test_bad_patterns_are_spec_errors_naming_the_field(tmp_path):
    path = tmp_path / "bot.yaml"
    path.write_text(
        "name: Bot\ninstructions: x\nmodel: {provider: fake}\n"
        "moderation:\n  pii: sometimes\n  patterns:\n    ticket: '(TCK'\n    empty: 'a?'\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert "moderation.patterns.ticket: invalid regular expression" in message
    assert "moderation.patterns.empty: the pattern matches empty text" in message
    assert "moderation.pii: Input should be 'off', 'mask' or 'block'" in message


def test_the_server_default_applies_to_a_gpt_without_its_own(tmp_path, monkeypatch):
    spec = tmp_path / "bot.yaml"
    spec.write_text("name: Bot\ninstructions: x\nmodel: {provider: fake}\n", encoding="utf-8")
    loaded = load_spec(spec)
    monkeypatch.delenv(MODERATION_ENV, raising=False)
    assert server_default() is None and moderation_for(loaded) is None
    default = tmp_path / "moderation.yaml"
    default.write_text("blocklist: [idiot]\nrefusal: Not here.\n", encoding="utf-8")
    monkeypatch.setenv(MODERATION_ENV, str(default))
    moderation = moderation_for(loaded)
    assert moderation is not None and moderation.refusal == "Not here."
    own = tmp_path / "own.yaml"
    own.write_text("name: Own\ninstructions: x\nmodel: {provider: fake}\nmoderation: {input: false, output: false}\n")
    assert moderation_for(load_spec(own)) is None  # its own config, which checks nothing, wins


def test_a_broken_default_file_names_the_file_and_field(tmp_path, monkeypatch):
    bad = tmp_path / "moderation.yaml"
    bad.write_text("blocklist: [idiot]\npatterns: {x: '('}\nrefusl: no\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"moderation.yaml: patterns.x: invalid regular expression") as caught:
        read_moderation_file(bad)
    assert "unknown field 'refusl'; did you mean 'refusal'?" in str(caught.value)
    monkeypatch.setenv(MODERATION_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(SpecError, match="cannot be read"):
        server_default()
