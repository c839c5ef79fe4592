"""`gptbuilder doctor` through the CLI runner: which sandbox the python tool uses, as text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gptbuilder.cli import app
from gptbuilder.cli import doctor as doctor_module
from gptbuilder.cli.doctor import Check
from gptbuilder.tools.sandbox import UNSAFE_ENV

runner = CliRunner()


def test_doctor_says_bubblewrap_is_in_use():
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok      python tool: bubblewrap: ")
    report = json.loads(runner.invoke(app, ["doctor", "--json"]).output)
    assert report["ok"] is True
    (sandbox,) = report["checks"]
    assert (sandbox["name"], sandbox["status"], sandbox["details"]["kind"]) == ("sandbox", "ok", "bubblewrap")
    assert sandbox["details"]["version"].startswith("bubblewrap ")


def test_doctor_fails_without_a_sandbox_and_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert result.output.startswith("error   python tool: unavailable: bubblewrap (bwrap) is not installed")
    assert "apt-get install bubblewrap" in result.output


def test_doctor_warns_about_unsafe_local_execution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(UNSAFE_ENV, "1")
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0
    (sandbox,) = json.loads(result.output)["checks"]
    assert (sandbox["status"], sandbox["details"]["kind"]) == ("warning", "unsafe-local")
    assert "UNSANDBOXED" in sandbox["summary"]


def test_a_check_that_breaks_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch):
    def broken(settings: object) -> Check:
        raise RuntimeError("no /proc here")

    monkeypatch.setattr(doctor_module, "CHECKS", [*doctor_module.CHECKS, ("broken", broken)])
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "error   the check itself failed: RuntimeError: no /proc here" in result.output
