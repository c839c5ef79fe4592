"""The lifecycle on the real embedded model (CPU): LoRA fine-tune, evaluate, register, answer as a GPT."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gptbuilder.cli import app

from .conftest import FIXTURES

pytestmark = pytest.mark.slow
runner = CliRunner()


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_lora_fine_tune_lowers_held_out_perplexity_and_a_gpt_answers_with_it(write_spec):
    # 20 steps of 2 blocks of 64 tokens: about three passes over the shop's text, a few minutes on 2 cores.
    trained = json.loads(
        _run(
            "train", "finetune", "embedded", "--data", str(FIXTURES / "shop.md"), "--name", "lantern",
            "--max-steps", "20", "--batch-size", "2", "--block-size", "64", "--lr", "1e-3", "--json",
        )
    )
    metrics = trained["metrics"]
    assert metrics["steps"] == 20 and trained["method"] == "lora" and trained["base"] == "embedded"
    assert metrics["validation_perplexity_after"] < metrics["validation_perplexity_before"]

    held_out = json.loads(_run("train", "eval", "lantern", "--data", str(FIXTURES / "heldout.txt"), "--json"))
    assert set(held_out) == {"model", "base", "perplexity", "base_perplexity", "tokens"}
    assert held_out["perplexity"] < held_out["base_perplexity"] and held_out["tokens"] > 100

    assert [entry["name"] for entry in json.loads(_run("models", "list", "--json"))] == ["lantern"]

    write_spec(
        "lantern",
        "name: Lantern helper\ninstructions: You answer questions about Brindlewood Lantern Works.\n"
        "model: {provider: transformers, name: 'registry:lantern', max_tokens: 24, temperature: 0}\n",
    )
    answer = json.loads(_run("chat", "lantern", "-m", "What does the Harbour lantern cost?", "--json"))
    assert answer["gpt"] == "lantern" and answer["text"].strip() and answer["usage"]["completion_tokens"] > 0
