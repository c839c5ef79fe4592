"""`gptbuilder train …` and `gptbuilder models …` through the CLI runner: statistics and every refusal (no weights loaded)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gptbuilder.cli import app
from gptbuilder.settings import Settings
from gptbuilder.training import finetune as tuning
from gptbuilder.training.registry import Entry, Registry
from tests.training.conftest import FIXTURES, tiny_base  # noqa: F401

runner = CliRunner()
SHOP = str(FIXTURES / "shop.md")


def _registry() -> Registry:
    return Registry(Settings.from_env().data_dir)


def _register(name: str) -> None:
    registry = _registry()
    staging = registry.staging(name)
    (staging / "config.json").write_text("{}", encoding="utf-8")
    registry.commit(staging, Entry(name=name, base="embedded", method="lora", metrics={"validation_perplexity_after": 9.5}))


def test_data_stats_count_documents_tokens_blocks_and_drops():
    result = runner.invoke(app, ["train", "data", SHOP, str(FIXTURES / "chats.jsonl"), "--block-size", "128", "--stats", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["documents"] == stats["kept"] == 23
    assert stats["train_blocks"] >= 6 and stats["validation_blocks"] >= 1
    assert stats["trainable_tokens"] < stats["train_tokens"]  # the chats' prompts are not trained on
    assert [s["kind"] for s in stats["sources"]] == ["text", "chat"] and len(stats["sources"][0]["sha256"]) == 64
    text = runner.invoke(app, ["train", "data", SHOP, "--stats"])
    assert text.exit_code == 0 and "documents: 21 read, 21 kept" in text.stdout and "dropped: nothing" in text.stdout


def test_a_tiny_dataset_fails_with_the_minimum(tmp_path):
    (tmp_path / "tiny.txt").write_text("Too short.\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "data", str(tmp_path / "tiny.txt"), "--stats"])
    assert result.exit_code == 1
    assert "error: too little data: 1 distinct document(s)" in result.stderr and "at least 2 distinct documents" in result.stderr


def test_a_bad_jsonl_line_stops_with_its_number_unless_skip_bad(tmp_path):
    bad = tmp_path / "chats.jsonl"
    bad.write_text((FIXTURES / "chats.jsonl").read_text(encoding="utf-8") + "not json\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "data", str(bad), "--block-size", "8"])
    assert result.exit_code == 1 and f"{bad}:3: is not JSON" in result.stderr
    skipped = runner.invoke(app, ["train", "data", str(bad), "--block-size", "8", "--skip-bad"])
    assert skipped.exit_code == 0, skipped.output
    assert "dropped: 1 bad JSONL line" in skipped.stdout and f"{bad}:3: is not JSON" in skipped.stdout


def test_finetune_refuses_an_unknown_base_with_did_you_mean():
    result = runner.invoke(app, ["train", "finetune", "embeded", "--data", SHOP, "--name", "shop"])
    assert result.exit_code == 1
    assert "unknown base model 'embeded'; did you mean 'embedded'?" in result.stderr


def test_finetune_refuses_a_taken_name_unless_overwrite():
    _register("shop")
    result = runner.invoke(app, ["train", "finetune", "embedded", "--data", SHOP, "--name", "shop"])
    assert result.exit_code == 1 and "already registered; pass --overwrite" in result.stderr


def test_finetune_needs_data_and_a_path_free_name():
    assert "give training data" in runner.invoke(app, ["train", "finetune", "embedded", "--name", "shop"]).stderr
    assert "cannot name a model" in runner.invoke(app, ["train", "finetune", "embedded", "--data", SHOP, "--name", "../x"]).stderr


def test_a_run_that_dies_registers_nothing(monkeypatch):
    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tuning, "ensure_checkpoint", lambda base: base.source)
    monkeypatch.setattr(tuning, "_train", die)
    with pytest.raises(KeyboardInterrupt):
        tuning.finetune(
            "embedded", tuning.read_paths([FIXTURES / "shop.md"]), "shop", tuning.FinetuneOptions(block_size=64),
            data_dir=Settings.from_env().data_dir,
        )
    registry = _registry()
    assert registry.names() == [] and [p.name for p in registry.root.iterdir()] == []


def test_models_list_show_and_remove(write_spec):
    assert "no registered model" in runner.invoke(app, ["models", "list"]).stdout
    _register("shop")
    listed = runner.invoke(app, ["models", "list", "--json"])
    assert [entry["name"] for entry in json.loads(listed.stdout)] == ["shop"]
    assert "shop\tlora on embedded" in runner.invoke(app, ["models", "list"]).stdout
    write_spec("helper", "name: Helper\ninstructions: x\nmodel: {provider: transformers, name: 'registry:shop'}\n")
    shown = json.loads(runner.invoke(app, ["models", "show", "shop"]).stdout)
    assert shown["used_by"] == ["helper"] and shown["metrics"]["validation_perplexity_after"] == 9.5
    refused = runner.invoke(app, ["models", "remove", "shop"])
    assert refused.exit_code == 1 and "used by helper" in refused.stderr
    assert "did you mean 'shop'" in runner.invoke(app, ["models", "show", "shoop"]).stderr


@pytest.mark.slow  # the child process loads model weights (the tiny random base)
def test_ctrl_c_on_a_real_process_keeps_a_checkpoint_and_resume_finishes_it(tiny_base):
    """SIGINT to `gptbuilder train finetune` stops it after a step with a checkpoint; `--resume` reaches --max-steps."""
    command = [
        str(Path(sys.executable).with_name("gptbuilder")), "train", "finetune", str(tiny_base), "--data", SHOP, "--name", "tiny",
        "--batch-size", "2", "--block-size", "32", "--save-every", "1000",
    ]
    process = subprocess.Popen([*command, "--max-steps", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:  # Trainer logs the loss every 10 steps: training is under way
            if "'loss'" in line:
                break
        process.send_signal(signal.SIGINT)
        stdout, rest = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 1 and stdout == ""
    stopped = re.search(r"error: stopped at step (\d+); the model is not registered", rest)
    assert stopped, rest
    assert "continue with: gptbuilder train finetune" in rest and "--max-steps 100000 --resume" in rest
    assert _registry().names() == []
    step = int(stopped.group(1))
    assert (_registry().root / ".run-tiny" / ".trainer" / f"checkpoint-{step}").is_dir()

    resumed = runner.invoke(app, [*command[1:], "--max-steps", str(step + 3), "--resume", "--json"])
    assert resumed.exit_code == 0, resumed.output
    metrics = json.loads(resumed.stdout)["metrics"]
    assert metrics["steps"] == step + 3 and metrics["resumed_from_step"] == step
    assert _registry().names() == ["tiny"] and os.listdir(_registry().root) == ["tiny"]
