"""`gptbuilder import` through the CLI runner: written specs, reports, refusals and --force."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
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
    assert "next: gptbuilder validate" in forced.output and f"gptbuilder --gpts {out.parent} chat poster" in forced.output


def _run_next(output: str) -> list[str]:
    """Run the printed `next:` commands (chat swapped for show, which needs no model); their outputs."""
    line = next(line for line in output.splitlines() if line.startswith("next: "))
    outputs = []
    for command in line.removeprefix("next: ").split(" && "):
        words = shlex.split(command)
        assert words[0] == "gptbuilder"
        words = ["show" if word == "chat" else word for word in words[1:]]
        result = runner.invoke(app, words)
        assert result.exit_code == 0, (command, result.output)
        outputs.append(result.output)
    return outputs


@pytest.mark.parametrize("out", [None, "elsewhere/bot.yaml", "../outside/bot.yaml"])
def test_next_command_works_from_the_current_directory(tmp_path, monkeypatch, out):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    extra = ["-o", out] if out else []
    result = runner.invoke(app, ["import", str(FIXTURES / "dify_chatbot.yml"), *extra])
    assert result.exit_code == 0, result.output
    validated, shown = _run_next(result.output)
    assert "1 valid, 0 invalid" in validated
    assert "Acme Policy Bot  (" + (Path(out).stem if out else "acme-policy-bot") + ")" in shown.splitlines()[0]


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


def test_a_second_import_of_the_same_name_is_refused_then_named_when_replaced(gpts_dir):
    real = FIXTURES / "real" / "dify_template_website_generator.yml"
    first = runner.invoke(app, ["import", str(real)])
    assert first.exit_code == 0, first.output
    assert f"wrote {gpts_dir / 'website-generator.yaml'}" in first.output
    again = runner.invoke(app, ["import", str(real)])
    assert again.exit_code == 1
    assert "website-generator.yaml already exists (the spec of 'Website Generator')" in again.output
    assert "pass --force to replace it (or -o FILE to write another file)" in again.output
    forced = runner.invoke(app, ["import", str(real), "--force", "--json"])
    assert forced.exit_code == 0, forced.output
    report = json.loads(forced.output)
    assert report["replaced"] == [str(gpts_dir / "website-generator.yaml")] == report["written"]
    shown = runner.invoke(app, ["import", str(real), "--force"])
    assert f"replaced {gpts_dir / 'website-generator.yaml'}" in shown.output and "wrote" not in shown.output


def test_cjk_names_import_under_their_romanized_id(gpts_dir):
    result = runner.invoke(app, ["import", str(FIXTURES / "real" / "gpt_wang_yangming.json"), "--force"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OpenAI GPT export: 王阳明 (wang-yang-ming)")
    assert "files[0]: knowledge file Wang Yangming Translation.pdf is not in the export" in result.output
    assert (gpts_dir / "wang-yang-ming.yaml").exists()
