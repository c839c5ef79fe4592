"""Progress on stderr: bars for `test`, `index` and the indexing a first chat triggers; stdout never changes."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from gptbuilder.cli import app
from gptbuilder.cli.progress import StderrProgress

from .test_testing_cli import GOOD  # two passing fake-model cases

runner = CliRunner()

SHOP = """
name: Shop
instructions: Answer from the sources.
model: {provider: fake}
knowledge: {files: ["knowledge/*.md"], embedding_model: fake}
"""


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make rich treat the runner's stderr as an interactive terminal, as a user's shell is."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")


@pytest.fixture
def shop(write_spec, gpts_dir) -> None:
    (gpts_dir / "knowledge").mkdir()
    for name in ("returns", "shipping", "payments"):
        (gpts_dir / "knowledge" / f"{name}.md").write_text(f"# {name.title()}\nAll about {name}.\n", encoding="utf-8")
    write_spec("shop", SHOP)


def test_bars_draw_on_a_terminal_and_the_display_stops_with_the_last_bar():
    out = io.StringIO()
    display = StderrProgress(Console(file=out, force_terminal=True, force_interactive=True, width=100))
    first, second = display.bar("testing alpha (cases)", 2), display.bar("indexing beta (files)", 4)
    first(1, 2)
    second(4, 4)
    assert "testing alpha (cases)" in out.getvalue() and "1/2" in out.getvalue()
    assert "indexing beta (files)" in out.getvalue() and display._progress is not None
    first(2, 2)
    assert display._progress is None  # nothing live any more: streamed text cannot mix with a bar
    first(1, 2)  # a late update of a closed bar is ignored


def test_nothing_is_drawn_off_a_terminal():
    out = io.StringIO()
    display = StderrProgress(Console(file=out, force_terminal=False, width=100))
    update = display.bar("testing alpha (cases)", 2)
    update(1, 2)
    display.close()
    assert out.getvalue() == ""


def test_test_command_shows_a_bar_per_gpt_on_stderr_and_keeps_json_clean(write_spec, terminal):
    write_spec("good", GOOD)
    result = runner.invoke(app, ["test", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["passed"] == 2
    assert "testing good (cases)" in result.stderr and "0/2" in result.stderr


def test_index_and_a_first_chat_show_an_indexing_bar(shop, terminal, tmp_path):
    indexed = runner.invoke(app, ["index", "shop", "--json"])
    assert indexed.exit_code == 0, indexed.output
    assert json.loads(indexed.stdout)["embedded"] == 3
    assert "indexing shop (files)" in indexed.stderr and "0/3" in indexed.stderr
    again = runner.invoke(app, ["index", "shop", "--json"])
    assert "indexing" not in again.stderr  # nothing to embed, no bar
    fresh = str(tmp_path / "fresh-data")  # no index yet: the first question builds it
    chat = runner.invoke(app, ["--data", fresh, "chat", "shop", "-m", "how do returns work?", "--json"])
    assert chat.exit_code == 0, chat.output
    assert json.loads(chat.stdout)["gpt"] == "shop"
    assert "indexing shop (files)" in chat.stderr


def test_off_a_terminal_stderr_carries_no_bars(shop, write_spec):
    write_spec("good", GOOD)
    for args in (["test"], ["index", "shop"], ["chat", "shop", "-m", "returns?"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "(cases)" not in result.stderr and "(files)" not in result.stderr
