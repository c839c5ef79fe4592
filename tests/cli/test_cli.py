"""The CLI through its runner: validate, list, show, schema and chat (fake and real embedded model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gptbuilder.cli import app
from tests.test_agent_tools import orders  # noqa: F401  (fixture: the demo orders service in the GPTs folder)

runner = CliRunner()

GOOD = """
name: Good Bot
description: Answers things.
category: qa
tags: [demo]
instructions: Be helpful.
conversation_starters: ["Hello?"]
model: {provider: fake}
"""

BROKEN = """
name: Broken
category: cooking
instructions: x
model: {temprature: 3}
"""

REAL = """
name: Real Assistant
instructions: You are a helpful assistant. Answer in one short sentence.
model: {temperature: 0, max_tokens: 40}
"""


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def test_validate_reports_every_problem_and_exits_1(write_spec, gpts_dir):
    write_spec("good", GOOD)
    write_spec("broken", BROKEN)
    result = invoke("validate")
    assert result.exit_code == 1
    assert "ok  " in result.stdout and "(good)" in result.stdout
    assert "category: Input should be" in result.stderr
    assert "model.temprature: unknown field 'temprature'; did you mean 'temperature'?" in result.stderr
    assert "1 valid, 1 invalid" in result.stderr


def test_validate_clean_folder_and_single_file(write_spec, gpts_dir):
    path = write_spec("good", GOOD)
    assert invoke("validate").exit_code == 0
    assert invoke("validate", str(path)).exit_code == 0
    missing = invoke("validate", str(gpts_dir / "nope.yaml"))
    assert missing.exit_code == 1 and "file not found" in missing.stderr


def test_validate_reports_tool_mistakes_that_chat_would_hit(write_spec):
    write_spec("tooled", "name: T\ninstructions: x\nmodel: {provider: fake}\ntools:\n"
                         "  - {builtin: python, options: {timeot: 10}}\n  - action: {openapi: actions/missing.yaml}\n")
    result = invoke("validate")
    assert result.exit_code == 1 and "ok  " not in result.stdout
    assert "tools[0].options.timeot: unknown option 'timeot'; did you mean 'timeout'?" in result.stderr
    assert "tools[1].action.openapi: OpenAPI file not found: actions/missing.yaml" in result.stderr
    assert "0 valid, 1 invalid" in result.stderr


def test_validate_reports_every_problem_at_once_in_line_order(write_spec, gpts_dir, monkeypatch):
    monkeypatch.chdir(gpts_dir.parent)
    write_spec("messy", "name: M\nmodel: {provider: fake, temprature: 3}\ntools:\n  - {builtin: fetch_url, options: {max_char: 9}}\n"
                        "category: cooking\n")
    result = invoke("validate")
    lines = [line.removeprefix("gpts/messy.yaml: ") for line in result.stderr.splitlines() if line.startswith("gpts/messy.yaml: ")]
    assert lines[0] == "give the GPT 'instructions' (text) or 'instructions_file' (a path)"  # with the others, not after
    assert [line.split(":")[0] for line in lines[1:]] == ["model.temprature", "tools[0].options.max_char", "category"]
    assert [line[-8:] for line in lines[1:]] == ["(line 2)", "(line 4)", "(line 5)"]


def test_validate_warns_about_a_knowledge_glob_matching_nothing_and_strict_fails(write_spec, gpts_dir, monkeypatch):
    monkeypatch.chdir(gpts_dir.parent)
    (gpts_dir / "docs").mkdir()
    (gpts_dir / "docs" / "faq.md").write_text("# FAQ\n", encoding="utf-8")
    write_spec("kb", "name: K\ninstructions: x\nmodel: {provider: fake}\nknowledge:\n  files: [docs/*.md, policies/*.pdf]\n")
    relaxed = invoke("validate")
    assert relaxed.exit_code == 0 and "ok  " in relaxed.stdout
    warning = "warning: gpts/kb.yaml: knowledge.files[1]: 'policies/*.pdf' matches no file"
    assert warning in relaxed.stderr and "1 valid, 0 invalid, 1 with warnings" in relaxed.stdout
    strict = invoke("validate", "--strict")
    assert strict.exit_code == 1 and "ok  " not in strict.stdout
    assert "gpts/kb.yaml: knowledge.files[1]: 'policies/*.pdf' matches no file" in strict.stderr
    assert "warning:" not in strict.stderr and "0 valid, 1 invalid" in strict.stderr


def test_index_warns_about_a_knowledge_glob_matching_nothing(write_spec):
    write_spec("kb", "name: K\ninstructions: x\nmodel: {provider: fake}\nknowledge: {files: [faq/*.md], embedding_model: fake}\n")
    result = invoke("index", "kb")
    assert result.exit_code == 0, result.output
    assert "warning: knowledge.files: 'faq/*.md' matches no file" in result.stderr


def test_validate_empty_folder_is_an_error(gpts_dir):
    result = invoke("validate")
    assert result.exit_code == 1 and "no spec files" in result.stderr


def test_list_skips_broken_specs_and_says_so(write_spec):
    write_spec("good", GOOD)
    write_spec("broken", BROKEN)
    result = invoke("list", "--json")
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert [g["id"] for g in listed] == ["good"]
    assert listed[0]["model"] == {"provider": "fake", "name": None}
    assert "skipped" in result.stderr and "broken.yaml" in result.stderr
    table = invoke("list")
    assert "Good Bot" in table.stdout and "broken" not in table.stdout


def test_gpts_option_overrides_the_environment(write_spec, tmp_path):
    other = tmp_path / "elsewhere"
    write_spec("elsewhere-bot", GOOD, folder=other)
    result = invoke("--gpts", str(other), "list", "--json")
    assert [g["id"] for g in json.loads(result.stdout)] == ["elsewhere-bot"]


def test_show_prints_details_and_instructions(write_spec):
    write_spec("good", GOOD)
    result = invoke("show", "good")
    assert result.exit_code == 0
    assert "Good Bot" in result.stdout and "Be helpful." in result.stdout and "» Hello?" in result.stdout
    data = json.loads(invoke("show", "good", "--json").stdout)
    assert data["instructions"] == "Be helpful." and data["conversation_starters"] == ["Hello?"]


def test_unknown_and_broken_ids_fail_cleanly(write_spec):
    write_spec("good-bot", GOOD)
    write_spec("broken", BROKEN)
    unknown = invoke("show", "good-bott")
    assert unknown.exit_code == 1
    assert "unknown GPT 'good-bott'; did you mean 'good-bot'?" in unknown.stderr
    broken = invoke("chat", "broken", "-m", "hi")
    assert broken.exit_code == 1 and "category" in broken.stderr
    assert "Traceback" not in broken.output


def test_schema_is_json_schema_of_the_spec():
    result = invoke("schema")
    schema = json.loads(result.stdout)
    assert schema["type"] == "object"
    assert {"name", "instructions", "model", "knowledge", "tools"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_chat_one_shot_text_and_json(write_spec):
    write_spec("good", GOOD)
    result = invoke("chat", "good", "-m", "ping pong")
    assert result.exit_code == 0 and result.stdout.strip() == "You said: ping pong"
    payload = json.loads(invoke("chat", "good", "-m", "ping pong", "--json", "--max-tokens", "2").stdout)
    assert payload == {
        "gpt": "good",
        "text": "You said:",
        "finish_reason": "length",
        "usage": {"prompt_tokens": payload["usage"]["prompt_tokens"], "completion_tokens": 2,
                  "total_tokens": payload["usage"]["prompt_tokens"] + 2},
        "citations": [],
        "tool_steps": [],
    }


def test_chat_reads_the_message_from_stdin(write_spec):
    write_spec("good", GOOD)
    result = invoke("chat", "good", "-m", "-", input="from stdin\n")
    assert result.stdout.strip() == "You said: from stdin"


def test_chat_bad_messages_fail_with_one_line(write_spec):
    write_spec("good", GOOD)
    empty = invoke("chat", "good", "-m", "  ")
    assert empty.exit_code == 1 and empty.stderr.strip() == "error: the message is empty; type a question or request"
    huge = invoke("chat", "good", "-m", "x" * 200_000)
    assert huge.exit_code == 1 and "at most 100,000" in huge.stderr and "Traceback" not in huge.output


def test_interactive_chat_keeps_history_and_survives_errors(write_spec):
    write_spec("good", 'name: Good\ninstructions: x\nmodel: {provider: fake, options: {replies: ["A1", "A2"]}}\n')
    result = invoke("chat", "good", input="first\n   \nsecond\n/reset\n/exit\n")
    assert result.exit_code == 0
    assert "A1" in result.stdout and "A2" in result.stdout
    assert "(new conversation)" in result.stdout
    assert "error: the message is empty" in result.stderr


@pytest.mark.slow
def test_real_embedded_model_answers_from_the_cli(write_spec):
    write_spec("real", REAL)
    result = invoke("chat", "real", "-m", "What is the capital of France?", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert "Paris" in payload["text"]
    assert payload["usage"]["completion_tokens"] > 0 and payload["finish_reason"] == "stop"


@pytest.mark.slow
def test_console_script_chats_with_the_real_model_in_a_fresh_process(write_spec, gpts_dir):
    write_spec("real", REAL)
    exe = Path(sys.executable).with_name("gptbuilder")
    env = {**os.environ, "GPTBUILDER_GPTS_DIR": str(gpts_dir)}
    done = subprocess.run(
        [str(exe), "chat", "real", "-m", "What is the capital of France?"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout


@pytest.mark.parametrize("command", [["validate"], ["list"], ["show", "x"], ["schema"], ["chat", "x"]])
def test_every_command_has_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_chat_shows_tool_steps(write_spec):
    call = '{\\"type\\": \\"tool_call\\", \\"name\\": \\"calculator\\", \\"arguments\\": {\\"expression\\": \\"6*7\\"}}'
    write_spec("calc", "name: Calc\ninstructions: x\ntools: [calculator]\n"
                       f'model: {{provider: fake, options: {{replies: ["{call}", "It is 42."]}}}}\n')
    result = invoke("chat", "calc", "-m", "6 times 7?")
    assert result.stdout.strip() == "It is 42."
    assert '[tool] calculator({"expression": "6*7"})' in result.stderr and "[tool] calculator returned: 6*7 = 42" in result.stderr
    payload = json.loads(invoke("chat", "calc", "-m", "6 times 7?", "--json").stdout)
    assert [s["type"] for s in payload["tool_steps"]] == ["tool_call", "tool_result"]


def orders_spec(write_spec, replies: list[str]) -> None:
    write_spec(
        "acme",
        "name: Acme\ninstructions: Use the tools.\nallow_private_network: true\n"
        f"model:\n  provider: fake\n  options:\n    replies: {json.dumps(replies)}\n"
        "tools:\n  - action: {openapi: actions/orders.openapi.yaml}\n",
    )


CANCEL = json.dumps({"type": "tool_call", "name": "cancelOrder", "arguments": {"order_id": "A1002"}})


def test_interactive_chat_asks_before_cancelling_and_runs_it_once_approved(write_spec, orders):
    orders_spec(write_spec, [CANCEL, "Order A1002 is cancelled.", "Anything else?"])
    result = invoke("chat", "acme", input="cancel A1002\ny\nthanks\n/exit\n")
    assert result.exit_code == 0, result.output
    assert 'cancelOrder(order_id="A1002") needs your approval' in result.stdout
    assert 'approve cancelOrder({"order_id": "A1002"})? [y/N]' in result.stdout
    assert "Order A1002 is cancelled." in result.stdout and "Anything else?" in result.stdout
    assert "[tool] cancelOrder returned:" in result.stderr
    assert orders.raw_paths.count("/orders/A1002/cancel") == 1  # ran once, and not again on the next turn


def test_interactive_chat_denial_sends_nothing(write_spec, orders):
    orders_spec(write_spec, [CANCEL, "Okay, it stays."])
    result = invoke("chat", "acme", input="cancel A1002\n\n/exit\n")
    assert result.exit_code == 0, result.output
    assert "Okay, it stays." in result.stdout and "[tool] cancelOrder failed: The user declined" in result.stderr
    assert not any("cancel" in path for path in orders.raw_paths)


def test_one_shot_chat_reports_the_request_and_runs_nothing(write_spec, orders):
    orders_spec(write_spec, [CANCEL])
    result = invoke("chat", "acme", "-m", "cancel A1002")
    assert result.exit_code == 0, result.output
    assert "needs your approval" in result.stdout and "gptbuilder chat acme" in result.stderr
    payload = json.loads(invoke("chat", "acme", "-m", "cancel A1002", "--json").stdout)
    assert payload["finish_reason"] == "confirmation_required"
    assert [s["type"] for s in payload["tool_steps"]] == ["confirmation_request"]
    assert payload["tool_steps"][0]["arguments"] == {"order_id": "A1002"}
    assert not any("cancel" in path for path in orders.raw_paths)


def test_chat_marks_a_curated_answer(write_spec):
    write_spec(
        "shop",
        "name: Shop\ninstructions: x\nmodel: {provider: fake}\nknowledge: {files: [], embedding_model: fake}\n"
        "curated_answers:\n  - {question: 'Do you ship to Canada?', answer: 'Yes, in 5-8 days.'}\n",
    )
    payload = json.loads(invoke("chat", "shop", "-m", "Do you ship to Canada?", "--json").stdout)
    assert payload["text"] == "Yes, in 5-8 days."
    assert payload["curated"]["question"] == "Do you ship to Canada?"
    shown = invoke("chat", "shop", "-m", "Do you ship to Canada?")
    assert shown.stdout.strip() == "Yes, in 5-8 days."
    assert "[curated] answer to 'Do you ship to Canada?'" in shown.stderr
