"""`gptbuilder test` through the CLI runner, and the shipped GPTs passing their tests on the embedded model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gptbuilder.cli import app
from gptbuilder.loader import load_spec
from gptbuilder.testing import latest_result, spec_version

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
SHIPPED = ["acme-support", "content-writer", "python-coder", "translator", "gptbuilder-docs"]

GOOD = """
name: Good
instructions: Be helpful.
model: {provider: fake, options: {replies: ["Hello there, friend."]}}
tests:
  - {name: greets, ask: hi, expect: {contains: [hello]}}
  - {name: is polite, ask: hi, expect: {not_contains: [idiot], regex: "friend\\\\.$"}}
"""

FAILING = """
name: Failing
instructions: Be helpful.
model: {provider: fake, options: {replies: ["Hello."]}}
tests:
  - {name: wants goodbye, ask: hi, expect: {contains: [goodbye]}}
"""

PLAIN = "name: Plain\ninstructions: Hi.\nmodel: {provider: fake}\n"


def test_passing_gpts_print_a_table_and_exit_0(write_spec, tmp_path):
    write_spec("good", GOOD)
    write_spec("plain", PLAIN)
    result = runner.invoke(app, ["test"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["gpt", "case", "result", "ms", "detail"]
    assert any(line.startswith("good") and "greets" in line and "PASS" in line for line in lines)
    assert any(line.startswith("plain") and "no tests" in line for line in lines)
    assert "2 passed, 0 failed, 0 errors in 2 GPTs (1 without tests)" in lines[-1]
    report = tmp_path / "data" / "tests" / "report.json"
    assert f"report: {report}" in lines[-1]
    assert json.loads(report.read_text())["summary"]["passed"] == 2
    assert latest_result(tmp_path / "data", "good") == (2, 2)


def test_a_failure_exits_1_with_the_reason(write_spec, tmp_path):
    write_spec("good", GOOD)
    write_spec("failing", FAILING)
    result = runner.invoke(app, ["test", "--report", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    assert "FAIL" in result.output and "contains 'goodbye': not in the answer" in result.output
    assert "2 passed, 1 failed, 0 errors" in result.output
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is False


def test_ids_select_gpts_and_json_prints_the_report(write_spec):
    write_spec("good", GOOD)
    write_spec("failing", FAILING)
    result = runner.invoke(app, ["test", "good", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [g["gpt"] for g in data["gpts"]] == ["good"]
    assert [c["name"] for c in data["gpts"][0]["cases"]] == ["greets", "is polite"]


def test_unknown_id_and_bad_override_are_one_line_errors(write_spec):
    write_spec("good", GOOD)
    unknown = runner.invoke(app, ["test", "goood"])
    assert unknown.exit_code == 1 and "unknown GPT 'goood'; did you mean 'good'?" in unknown.output
    bad = runner.invoke(app, ["test", "--model-override", "gpt-4o"])
    assert bad.exit_code == 1 and "write provider:name" in bad.output and "Traceback" not in bad.output


def test_a_broken_spec_is_reported_and_fails_the_run(write_spec):
    write_spec("good", GOOD)
    write_spec("broken", "name: Broken\ninstructions: x\nmodel: {temprature: 3}\n")
    result = runner.invoke(app, ["test"])
    assert result.exit_code == 1
    assert "ERROR" in result.output and "temprature" in result.output and "1 could not load" in result.output


def test_model_override_from_the_command_line(write_spec):
    write_spec("failing", FAILING)
    result = runner.invoke(app, ["test", "--model-override", "options={replies: [goodbye]}"])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_every_shipped_gpt_passes_its_tests_on_the_embedded_model(tmp_path):
    """The CI proof: the five scenario GPTs, their real knowledge, the real embedder and SmolLM2-135M."""
    data = tmp_path / "data"
    started = time.perf_counter()
    result = runner.invoke(app, ["--gpts", str(REPO / "gpts"), "--data", str(data), "test", *SHIPPED, "--json"])
    report = json.loads(result.output)
    failed = [
        (gpt["gpt"], case["name"], case["failures"], case["answer"][:200])
        for gpt in report["gpts"]
        for case in gpt["cases"]
        if case["status"] != "pass"
    ]
    assert result.exit_code == 0 and not failed, failed
    by_id = {gpt["gpt"]: gpt for gpt in report["gpts"]}
    assert sorted(by_id) == sorted(SHIPPED)
    for gpt_id in SHIPPED:
        gpt = by_id[gpt_id]
        assert gpt["model"] == "local" and gpt["total"] >= 3, gpt_id
        loaded = load_spec(REPO / "gpts" / f"{gpt_id}.yaml")
        assert latest_result(data, gpt_id, version=spec_version(loaded)) == (gpt["total"], gpt["total"])
    kinds = {key for gpt in report["gpts"] for case in gpt["cases"] for key in ("curated", "retrieved") if case[key]}
    assert kinds == {"curated", "retrieved"}
    print(f"shipped GPTs: {report['summary']} in {time.perf_counter() - started:.1f} s")
