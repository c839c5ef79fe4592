"""`gptbuilder index`, `search` and `calibrate` through the CLI runner, with real embeddings."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gptbuilder.cli import app

runner = CliRunner()

SPEC = """
name: Acme Support
instructions: Answer from the sources.
model: {provider: fake}
knowledge:
  files: ["knowledge/*.md", "knowledge/none/*.pdf"]
  top_k: 2
"""


@pytest.fixture
def acme(write_spec, gpts_dir):
    folder = gpts_dir / "knowledge"
    folder.mkdir()
    (folder / "returns.md").write_text("# Returns\n## Window\nShoes can be returned within 30 days of delivery.\n", encoding="utf-8")
    (folder / "shipping.md").write_text("# Shipping\n## Times\nStandard delivery takes 3 to 5 business days.\n", encoding="utf-8")
    write_spec("acme", SPEC)
    write_spec(
        "calibrated",
        SPEC + "  min_score: 0.9\ntests:\n  - ask: Can I return my shoes?\n    retrieves: [knowledge/returns.md]\n"
        "  - ask: What is the meaning of life?\n    expect: {refuses: true}\n",
    )
    write_spec("plain", "name: Plain\ninstructions: x\nmodel: {provider: fake}\n")
    return folder


def test_index_reports_then_skips_unchanged_files(acme):
    first = runner.invoke(app, ["index", "acme"])
    assert first.exit_code == 0, first.output
    assert "acme: 2 added, 0 updated, 0 unchanged, 0 removed; 2 chunks (2 embedded)" in first.stdout
    assert "'knowledge/none/*.pdf' matches no file" in first.stderr
    (acme / "shipping.md").write_text("# Shipping\n## Times\nExpress delivery takes 1 day.\n", encoding="utf-8")
    second = json.loads(runner.invoke(app, ["index", "acme", "--json"]).stdout)
    assert second["updated"] == ["knowledge/shipping.md"] and second["unchanged"] == ["knowledge/returns.md"]
    assert second["embedded"] == 1
    rebuilt = json.loads(runner.invoke(app, ["index", "acme", "--rebuild", "--json"]).stdout)
    assert rebuilt["rebuilt"] and rebuilt["embedded"] == 2


def test_search_json_has_source_text_score_and_locator(acme):
    result = runner.invoke(app, ["search", "acme", "how long is standard delivery", "--json", "--k", "1"])
    assert result.exit_code == 0, result.output
    [hit] = json.loads(result.stdout)
    assert hit["source"] == "knowledge/shipping.md"
    assert "3 to 5 business days" in hit["text"]
    assert isinstance(hit["score"], float)
    assert hit["locator"]["headings"] == ["Shipping", "Times"]


def test_search_text_output_ranks_passages(acme):
    result = runner.invoke(app, ["search", "acme", "returning shoes", "--search", "dense"])
    assert result.exit_code == 0
    assert result.stdout.startswith("1. knowledge/returns.md (Returns > Window)")


def test_search_many_queries_prints_json_lines(acme, tmp_path):
    queries = tmp_path / "queries.txt"
    queries.write_text("returning shoes\n\nstandard delivery time\n", encoding="utf-8")
    result = runner.invoke(app, ["search", "acme", "--queries", str(queries), "--k", "1", "--json"])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["returning shoes", "standard delivery time"]
    assert [line["results"][0]["source"] for line in lines] == ["knowledge/returns.md", "knowledge/shipping.md"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "plain"], "plain has no knowledge"),
        (["search", "acme"], "give a QUERY or --queries FILE"),
        (["search", "acme", "x", "--search", "fuzzy"], "--search must be dense, bm25 or hybrid"),
        (["search", "acme", "--queries", "/nonexistent/q.txt"], "cannot read /nonexistent/q.txt"),
        (["index", "nope"], "unknown GPT 'nope'"),
        (["calibrate", "acme"], "acme has no on-topic questions to measure"),
        (["calibrate", "plain", "--questions", "/dev/null"], "plain has no knowledge"),
        (["calibrate", "calibrated", "--off-topic", "/nonexistent/q.txt"], "cannot read /nonexistent/q.txt"),
    ],
)
def test_bad_knowledge_commands_fail_cleanly(acme, args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.output


def test_chat_json_includes_citations(acme):
    result = runner.invoke(app, ["chat", "acme", "-m", "can shoes be returned?", "--json"])
    payload = json.loads(result.stdout)
    assert payload["citations"][0]["source"] == "knowledge/returns.md"
    assert payload["citations"][0]["locator"]["headings"] == ["Returns", "Window"]


def test_calibrate_measures_the_specs_tests_and_extra_questions(acme, tmp_path):
    extra = tmp_path / "questions.txt"
    extra.write_text("How long does standard delivery take?\n", encoding="utf-8")
    result = runner.invoke(app, ["calibrate", "calibrated", "--questions", str(extra), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["embedder"] == "all-MiniLM-L6-v2"
    assert set(report["on_topic"]) == {"Can I return my shoes?", "How long does standard delivery take?"}
    assert "What is the meaning of life?" in report["off_topic"] and "澳大利亚的首都是哪里？" in report["off_topic"]
    assert report["separates"] == (min(report["on_topic"].values()) > max(report["off_topic"].values()))


def test_calibrate_text_names_the_floor_and_judges_the_specs_own(acme):
    result = runner.invoke(app, ["calibrate", "calibrated"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("calibrated (all-MiniLM-L6-v2): 1 on-topic questions score")
    assert lines[1].startswith(("separates: min_score: ", "does not separate: "))
    # 0.9 is above anything MiniLM gives these short files, so the spec's floor refuses the real question.
    assert lines[-1] == "the spec's min_score 0.9: refuses 1 on-topic, lets 0 off-topic through"
