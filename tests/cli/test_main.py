"""The `gptbuilder` app itself: --version, -h, and where it looked when no GPTs are found."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gptbuilder import __version__
from gptbuilder.cli import app

runner = CliRunner()


def test_version_and_short_help():
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout == f"gptbuilder {__version__}\n"
    for args in (["-h"], ["test", "-h"]):
        shown = runner.invoke(app, args)
        assert shown.exit_code == 0 and shown.stdout.startswith("Usage: gptbuilder")
    assert "[default: every GPT]" in runner.invoke(app, ["test", "-h"]).stdout  # option help keeps its brackets


@pytest.mark.parametrize("how", ["default", "env", "option"])
def test_outside_the_repository_list_and_chat_say_where_they_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    options: list[str] = []
    if how == "default":
        monkeypatch.delenv("GPTBUILDER_GPTS_DIR")
    elif how == "env":
        monkeypatch.setenv("GPTBUILDER_GPTS_DIR", str(empty))
    else:
        options = ["--gpts", str(empty)]
    folder = tmp_path / "gpts" if how == "default" else empty
    origin = {"default": "the default", "env": "GPTBUILDER_GPTS_DIR", "option": "--gpts"}[how]
    listed = runner.invoke(app, [*options, "list"])
    chatted = runner.invoke(app, [*options, "chat", "assistant", "-m", "hi"])
    assert chatted.exit_code == 1 and "unknown GPT 'assistant'" in chatted.stderr
    for result in (listed, chatted):
        state = " (no such folder)" if how != "default" else ""  # the test's own gpts/ exists, empty
        assert f"looked in {folder.resolve()}{state}, set by {origin}" in result.stderr
        assert "--gpts DIR or GPTBUILDER_GPTS_DIR=DIR" in result.stderr
        assert result.stdout == ""
