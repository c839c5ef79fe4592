"""`gptbuilder chat` shows a moderated turn: the refusal on stdout, a `[moderated]` line on stderr, a field in --json."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gptbuilder.cli import app

SPEC = "name: Bot\ninstructions: x\nmodel: {provider: fake}\nmoderation: {blocklist: [idiot], refusal: Not that.}\n"


def test_chat_prints_the_refusal_and_why(write_spec):
    write_spec("bot", SPEC)
    runner = CliRunner()
    shown = runner.invoke(app, ["chat", "bot", "-m", "you idiot"])
    assert shown.exit_code == 0 and shown.stdout.strip() == "Not that."
    assert "[moderated] input blocked by blocklist (blocklist)" in shown.stderr
    payload = json.loads(runner.invoke(app, ["chat", "bot", "-m", "you idiot", "--json"]).stdout)
    assert payload["finish_reason"] == "content_filter"
    assert payload["moderation"] == [{"type": "moderated", "side": "input", "check": "blocklist", "category": "blocklist",
                                      "action": "blocked"}]
