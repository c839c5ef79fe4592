"""`gptbuilder import` through the CLI runner: written specs, reports, refusals and --force."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gptbuilder.cli import app

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"


def test_import_writes_a_valid_spec_into_the_gpts_folder(gpts_dir):
    result = runner.invoke(app, ["import", str(FIXTURES / "dify_chatbot.yml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Dify DSL: Acme Policy Bot (acme-policy-bot)")
    assert f"wrote {gpts_dir / 'acme-policy-bot.yaml'}" in result.output
    assert "presence_penalty (not a spec setting)" in result.output
    validated = runner.invoke(app, ["validate"])
    assert validated.exit_code == 0 and "ok  " in validated.output
    shown = runner.invoke(app, ["show", "acme-policy-bot", "--json"])
    assert json.loads(shown.output)["conversation_starters"][1] == "Do you ship to Switzerland?"


def test_unmappable_parts_are_listed_and_nothing_is_written_without_force(gpts_dir, tmp_path):
    out = tmp_path / "out" / "poster.yaml"
    result = runner.invoke(app, ["import", str(FIXTURES / "openai_gpt_lossy.json"), "-o", str(out)])
    assert result.exit_code == 1
    assert "not mapped — the imported GPT lacks these:" in result.output
    assert "tools[0]: image generation (DALL·E) has no equivalent" in result.output
    assert "error: nothing written: 2 part(s)" in result.output and "--force" in result.output
    assert not out.exists()
    forced = runner.invoke(app, ["import", str(FIXTURES / "openai_gpt_lossy.json"), "-o", str(out), "--force"])
    assert forced.exit_code == 0 and out.exists()
    assert "next: gptbuilder validate" in forced.output and "gptbuilder chat poster" in forced.output


def test_json_report(gpts_dir):
    result = runner.invoke(app, ["import", str(FIXTURES / "dify_agent_lossy.yml"), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output[: result.output.rindex("}") + 1])
    assert report["format"] == "dify" and report["written"] == [] and "nothing written" in report["error"]
    assert len(report["lost"]) == 6 and all(item["lost"] for item in report["lost"])


def test_wrong_format_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["import", str(FIXTURES / "not_an_export.json")])
    assert result.exit_code == 1
    assert "not an OpenAI GPT export" in result.output and "Traceback" not in result.output
    workflow = runner.invoke(app, ["import", str(FIXTURES / "dify_workflow.yml")])
    assert workflow.exit_code == 1 and "workflow, not a chatbot" in workflow.output
