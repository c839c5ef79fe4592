"""The test runner: every expectation, retrieval cases, bad cases, overrides and results per spec version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gptbuilder.testing as testing
from gptbuilder.errors import InputError, UnknownGPTError
from gptbuilder.loader import load_spec
from gptbuilder.store import Store
from gptbuilder.testing import (
    latest_result,
    load_runs,
    parse_model_override,
    run_gpt,
    run_tests,
    spec_version,
    with_model,
)

SHOP = """
name: Shop
instructions: Answer from the sources.
model:
  provider: fake
  options: {{replies: [{reply}]}}
knowledge:
  files: [kb/*.md]
  embedding_model: fake
  top_k: 1
  min_score: 0.2
curated_answers:
  - {{question: "What is your return window?", answer: "30 days from delivery."}}
tests:
{tests}
"""


@pytest.fixture
def shop(write_spec, gpts_dir):
    """Write the shop GPT with the given model reply and tests; return its loaded spec."""
    kb = gpts_dir / "kb"
    kb.mkdir(exist_ok=True)
    (kb / "returns.md").write_text("# Returns\nShoes can be returned within 30 days of delivery.\n", encoding="utf-8")
    (kb / "warranty.md").write_text("# Warranty\nThe warranty lasts two years against defects.\n", encoding="utf-8")

    def make(tests: str, reply: str = "'Returns take 30 days [1].'", name: str = "shop"):
        return load_spec(write_spec(name, SHOP.format(reply=reply, tests=tests)))

    return make


def run(loaded, tmp_path: Path):
    return run_gpt(loaded, data_dir=tmp_path / "data")


def only_case(result):
    (case,) = result.cases
    return case


def test_answer_checks_pass_and_fail_with_a_reason_each(shop, tmp_path):
    ok = shop(
        "  - {ask: 'how long for returns of shoes?', expect: {contains: ['30 DAYS'], not_contains: [bitcoin], regex: '\\d+ days'}}"
    )
    case = only_case(run(ok, tmp_path))
    assert case.status == "pass" and case.failures == [] and case.answer == "Returns take 30 days [1]."
    bad = shop(
        "  - {ask: 'how long for returns of shoes?', expect: {contains: [weeks], not_contains: ['30'], regex: '^No'}}"
    )
    case = only_case(run(bad, tmp_path))
    assert case.status == "fail"
    assert case.failures == [
        "contains 'weeks': not in the answer",
        "not_contains '30': in the answer",
        "regex '^No': no match in the answer",
    ]


def test_cites_checks_the_citations_by_file_name_or_path(shop, tmp_path):
    loaded = shop(
        "  - {ask: 'can shoes be returned?', expect: {cites: returns.md}}\n"
        "  - {ask: 'can shoes be returned?', expect: {cites: kb/returns.md}}\n"
        "  - {ask: 'can shoes be returned?', expect: {cites: warranty.md}}"
    )
    first, second, third = run(loaded, tmp_path).cases
    assert first.status == second.status == "pass" and first.citations == ["kb/returns.md"]
    assert third.status == "fail"
    assert third.failures == ["cites warranty.md: not among the citations (kb/returns.md)"]


def test_retrieval_only_cases_check_the_top_k_without_the_model(shop, tmp_path):
    loaded = shop(
        "  - {ask: 'how long does the warranty last?', retrieves: warranty.md}\n"
        "  - {ask: 'how long does the warranty last?', retrieves: returns.md}",
        reply="'{{never used}}'",
    )
    good, bad = run(loaded, tmp_path).cases
    assert good.status == "pass" and good.retrieved == ["kb/warranty.md"] and good.answer == ""
    assert bad.status == "fail" and bad.failures == ["retrieves returns.md: not among the passages found (kb/warranty.md)"]


def test_a_case_naming_a_missing_source_file_is_an_error_naming_it(shop, tmp_path):
    loaded = shop(
        "  - {ask: 'can shoes be returned?', expect: {cites: refunds.md}}\n"
        "  - {ask: 'can shoes be returned?', retrieves: docs/returns.md}\n"
        "  - {ask: 'can shoes be returned?', expect: {contains: [days]}}"
    )
    missing, wrong_folder, fine = run(loaded, tmp_path).cases
    assert missing.status == "error"
    assert missing.failures == ["refunds.md: no such knowledge file in shop (its files: kb/returns.md, kb/warranty.md)"]
    assert wrong_folder.status == "error" and "docs/returns.md: no such knowledge file" in wrong_folder.failures[0]
    assert fine.status == "pass", "one bad case does not stop the others"


def test_a_case_naming_files_of_a_gpt_without_knowledge_is_an_error(write_spec, tmp_path):
    text = "name: Bare\ninstructions: Hi.\nmodel: {provider: fake}\ntests:\n  - {ask: hi, retrieves: faq.md}\n"
    case = only_case(run(load_spec(write_spec("bare", text)), tmp_path))
    assert case.status == "error"
    assert case.failures == ["the case names faq.md, but bare has no knowledge files (add a knowledge: section)"]


def test_refuses_recognises_the_no_match_refusal_and_model_refusals(shop, tmp_path):
    loaded = shop(
        "  - {ask: 'zebra quantum saxophone', expect: {refuses: true}}\n"
        "  - {ask: 'can shoes be returned?', expect: {refuses: true}}\n"
        "  - {ask: 'can shoes be returned?', expect: {refuses: false}}",
    )
    no_match, answered, not_refused = run(loaded, tmp_path).cases
    assert no_match.status == "pass" and no_match.answer.startswith("I couldn't find anything")
    assert answered.status == "fail" and answered.failures == ["refuses: the GPT answered instead of refusing"]
    assert not_refused.status == "pass"
    model_refusal = shop("  - {ask: 'can shoes be returned?', expect: {refuses: true}}", reply="\"Sorry, I don't know.\"")
    assert only_case(run(model_refusal, tmp_path)).status == "pass"


def test_curated_expectation(shop, tmp_path):
    loaded = shop(
        "  - {ask: 'what is your return window', expect: {curated: true, contains: ['30 days']}}\n"
        "  - {ask: 'can shoes be returned?', expect: {curated: true}}\n"
        "  - {ask: 'what is your return window', expect: {curated: false}}"
    )
    curated, not_curated, unexpected = run(loaded, tmp_path).cases
    assert curated.status == "pass" and curated.curated and curated.citations == []
    assert not_curated.failures == ["curated: answered by the model"]
    assert unexpected.failures == ["curated: a curated answer answered"]


CALC = """
name: Calc
instructions: Use the calculator.
model:
  provider: fake
  options:
    replies:
      - '{{"type": "tool_call", "name": "calculator", "arguments": {{"expression": "12 * 7"}}}}'
      - "It is 84."
tools: [calculator]
tests:
{tests}
"""


def test_calls_checks_the_tool_and_its_arguments(write_spec, tmp_path):
    tests = (
        "  - {ask: 'what is 12 times 7?', expect: {calls: {tool: calculator, args: {expression: '12 * 7'}}, contains: ['84']}}\n"
        "  - {ask: 'what is 12 times 7?', expect: {calls: {tool: calculator, args: {expression: '3 + 4'}}}}\n"
        "  - {ask: 'what is 12 times 7?', expect: {calls: {tool: current_time}}}"
    )
    result = run(load_spec(write_spec("calc", CALC.format(tests=tests))), tmp_path)
    right, wrong_args, wrong_tool = result.cases
    assert right.status == "pass", right.failures
    assert right.tool_calls == [{"name": "calculator", "arguments": {"expression": "12 * 7"}}]
    assert wrong_args.failures == [
        'calls calculator({"expression": "3 + 4"}): not called (calls made: calculator({"expression": "12 * 7"}))'
    ]
    assert wrong_tool.status == "fail"


def test_max_latency_ms(shop, tmp_path, monkeypatch):
    loaded = shop("  - {ask: 'can shoes be returned?', expect: {max_latency_ms: 1500}}")
    assert only_case(run(loaded, tmp_path)).status == "pass"
    ticks = iter(range(0, 10_000, 2))  # every clock reading is 2 s after the last
    monkeypatch.setattr(testing.time, "perf_counter", lambda: float(next(ticks)))
    case = only_case(run(loaded, tmp_path))
    assert case.latency_ms == 2000 and case.failures == ["max_latency_ms 1500: took 2000 ms"]


def test_a_failing_model_is_an_error_case_and_the_run_goes_on(write_spec, tmp_path):
    text = (
        "name: Flaky\ninstructions: Hi.\nmodel: {provider: fake, options: {fail_after: 0}}\n"
        "tests:\n  - {ask: hi, expect: {contains: [x]}}\n  - {ask: again, expect: {contains: [x]}}\n"
    )
    result = run(load_spec(write_spec("flaky", text)), tmp_path)
    assert [case.status for case in result.cases] == ["error", "error"]
    assert "model failed" in result.cases[0].failures[0]
    assert not result.ok and result.passed == 0 and result.total == 2


def test_runs_are_greedy_and_seeded(shop, tmp_path, monkeypatch):
    seen = []
    original = testing.run_case

    def spy(agent, case, **kwargs):
        stream = agent.stream
        agent.stream = lambda messages, **options: seen.append(options) or stream(messages, **options)
        return original(agent, case, **kwargs)

    monkeypatch.setattr(testing, "run_case", spy)
    run(shop("  - {ask: 'can shoes be returned?', expect: {contains: [days]}}"), tmp_path)
    assert seen == [{"temperature": 0, "seed": testing.SEED}]


# ----- whole runs, the store and stored results -------------------------------------------------


def test_a_gpt_without_tests_is_reported_not_an_error(write_spec, tmp_path):
    write_spec("plain", "name: Plain\ninstructions: Hi.\nmodel: {provider: fake}\n")
    report = run_tests(Store(tmp_path / "gpts"), data_dir=tmp_path / "data")
    (result,) = report.results
    assert result.gpt == "plain" and result.cases == [] and result.error is None
    assert report.ok and report.counts()["gpts_without_tests"] == 1
    assert latest_result(tmp_path / "data", "plain") is None, "nothing to store for a GPT without tests"


def test_a_broken_spec_fails_the_run_and_unknown_ids_raise(write_spec, shop, tmp_path):
    shop("  - {ask: 'can shoes be returned?', expect: {contains: [days]}}")
    write_spec("broken", "name: Broken\ninstructions: x\nmodel: {temprature: 3}\n")
    store = Store(tmp_path / "gpts")
    report = run_tests(store, data_dir=tmp_path / "data")
    by_id = {r.gpt: r for r in report.results}
    assert by_id["shop"].ok and "temprature" in by_id["broken"].error
    assert not report.ok and report.counts()["gpts_in_error"] == 1
    only = run_tests(store, ["shop"], data_dir=tmp_path / "data")
    assert [r.gpt for r in only.results] == ["shop"] and only.ok
    with pytest.raises(UnknownGPTError, match="did you mean 'shop'"):
        run_tests(store, ["shopp"], data_dir=tmp_path / "data")


def test_results_are_stored_per_spec_version(shop, gpts_dir, tmp_path):
    data = tmp_path / "data"
    loaded = shop(
        "  - {ask: 'can shoes be returned?', expect: {contains: [days]}}\n"
        "  - {ask: 'can shoes be returned?', expect: {contains: [weeks]}}"
    )
    store = Store(gpts_dir)
    first = spec_version(loaded)
    run_tests(store, data_dir=data)
    assert latest_result(data, "shop") == (1, 2)
    assert latest_result(data, "shop", version=first) == (1, 2)
    (gpts_dir / "kb" / "returns.md").write_text("# Returns\nShoes can be returned within 30 days, or 6 weeks unworn.\n")
    second = spec_version(load_spec(loaded.path))
    assert second != first, "a knowledge file is part of the version"
    assert latest_result(data, "shop", version=second) is None
    run_tests(store, data_dir=data)
    assert latest_result(data, "shop", version=second) == (1, 2)
    runs = load_runs(data, "shop")
    assert [run["version"] for run in runs] == [first, second]
    assert runs[-1]["cases"][1]["failures"] == ["contains 'weeks': not in the answer"]
    assert runs[-1]["finished_at"] and runs[-1]["model"] == "fake"


def test_spec_version_covers_the_spec_and_ignores_unrelated_files(shop, gpts_dir):
    loaded = shop("  - {ask: x, expect: {contains: [y]}}")
    version = spec_version(loaded)
    (gpts_dir / "kb" / "notes.txt").write_text("not matched by kb/*.md")
    assert spec_version(load_spec(loaded.path)) == version
    loaded.path.write_text(loaded.path.read_text() + "tags: [shop]\n")
    assert spec_version(load_spec(loaded.path)) != version


def test_old_runs_are_pruned_and_a_corrupt_results_file_is_replaced(shop, tmp_path, monkeypatch):
    data = tmp_path / "data"
    loaded = shop("  - {ask: 'can shoes be returned?', expect: {contains: [days]}}")
    path = data / "tests" / "shop.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert load_runs(data, "shop") == [] and latest_result(data, "shop") is None
    monkeypatch.setattr(testing, "KEEP_RUNS", 3)
    for _ in range(5):
        testing.save_result(data, run(loaded, tmp_path))
    assert len(load_runs(data, "shop")) == 3
    assert json.loads(path.read_text())["gpt"] == "shop"


def test_the_report_is_json_ready(shop, tmp_path):
    shop("  - {ask: 'can shoes be returned?', expect: {contains: [days]}}")
    report = run_tests(Store(tmp_path / "gpts"), data_dir=tmp_path / "data")
    path = testing.write_report(report, tmp_path / "out" / "report.json")
    data = json.loads(path.read_text())
    assert data["ok"] is True and data["summary"]["passed"] == 1
    (gpt,) = data["gpts"]
    assert gpt["gpt"] == "shop" and gpt["passed"] == gpt["total"] == 1 and len(gpt["version"]) == 16
    assert gpt["cases"][0]["status"] == "pass"


# ----- model overrides ---------------------------------------------------------------------------


def test_model_override_parsing():
    assert parse_model_override(["openai:gpt-4o-mini"]) == {"provider": "openai", "name": "gpt-4o-mini"}
    assert parse_model_override(["provider=fake", "options={replies: [hi]}", "max_tokens=20"]) == {
        "provider": "fake",
        "options": {"replies": ["hi"]},
        "max_tokens": 20,
    }
    with pytest.raises(InputError, match="write provider:name"):
        parse_model_override(["gpt-4o"])
    with pytest.raises(InputError, match="not valid YAML"):
        parse_model_override(["options={unclosed"])


def test_model_override_replaces_the_model_and_is_validated(shop, tmp_path):
    loaded = shop("  - {ask: 'can shoes be returned?', expect: {contains: [overridden]}}")
    assert not run(loaded, tmp_path).ok
    result = run_gpt(loaded, data_dir=tmp_path / "data", model_override={"options": {"replies": ["overridden [1]"]}})
    assert result.ok and result.model == "fake"
    switched = with_model(loaded, {"provider": "openai", "name": "gpt-4o-mini"})
    assert switched.spec.model.options == {} and switched.spec.model.name == "gpt-4o-mini"
    assert switched.spec.knowledge == loaded.spec.knowledge
    with pytest.raises(InputError, match="--model-override: temperature: Input should be less than or equal to 2"):
        with_model(loaded, {"temperature": 9})


def test_grounded_and_facts_expectations(shop, tmp_path):
    tests = "  - {ask: 'how long for returns of shoes?', expect: {grounded: true, facts: ['thirty days']}}"
    case = only_case(run(shop(tests), tmp_path))
    assert case.status == "pass" and case.unsupported == [] and case.corrected == 0
    wrong = shop(tests, reply="'Returns take 45 days [1].'")
    generate = load_spec(write_generate(wrong))
    case = only_case(run(generate, tmp_path))
    assert case.status == "fail" and case.unsupported == ["45 days"]
    assert case.failures == ["grounded: not in the sources: 45 days", "facts 'thirty days': not stated in the answer"]
    verified = only_case(run(shop(tests, reply="'Returns take 45 days [1].'"), tmp_path))  # the guard fixes the answer
    assert verified.status == "pass" and verified.corrected == 1 and "30 days" in verified.answer


def write_generate(loaded):
    """The spec file of ``loaded`` with `answer_mode: generate` (today's free answers)."""
    text = loaded.path.read_text(encoding="utf-8").replace("  top_k: 1\n", "  top_k: 1\n  answer_mode: generate\n")
    loaded.path.write_text(text, encoding="utf-8")
    return loaded.path
