"""`train pretrain`: a tiny model from scratch with its own BPE learns the shop's text, is registered and answers."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gptbuilder.cli import app
from gptbuilder.training.pretrain import SIZES, build_model, train_tokenizer

from .conftest import FIXTURES

pytestmark = pytest.mark.slow  # its tests load model weights through transformers

runner = CliRunner()


class FullVocabulary:
    """Stands for a BPE that learnt all of the small size's merges (a real corpus, not the shop's page)."""

    bos_token_id = eos_token_id = pad_token_id = 0

    def __len__(self) -> int:
        return SIZES["small"].vocab


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_sizes_are_a_few_million_and_about_thirty_million_parameters():
    tokenizer = train_tokenizer([(FIXTURES / "shop.md").read_text(encoding="utf-8")], 4096)
    assert tokenizer.decode(tokenizer("Quillfeather Lane, 95 crowns ✓")["input_ids"]) == "Quillfeather Lane, 95 crowns ✓"
    tiny = build_model(SIZES["tiny"], tokenizer, context=256, seed=0).num_parameters()
    assert 0.5e6 < tiny < 5e6
    assert 20e6 < build_model(SIZES["small"], FullVocabulary(), context=256, seed=0).num_parameters() < 40e6


def test_a_tiny_pretrain_lowers_the_loss_is_registered_and_answers(write_spec):
    trained = json.loads(
        _run(
            "train", "pretrain", "--data", str(FIXTURES / "shop.md"), "--size", "tiny", "--name", "toy",
            "--max-steps", "40", "--batch-size", "4", "--block-size", "64", "--lr", "3e-3", "--json",
        )
    )
    metrics = trained["metrics"]
    assert trained["method"] == "pretrain" and trained["base"] == "scratch:tiny" and metrics["steps"] == 40
    assert trained["hyperparameters"]["size"] == "tiny" and trained["hyperparameters"]["tokenizer"] == "train"
    assert metrics["validation_loss_after"] < metrics["validation_loss_before"] - 0.5  # 6.66 -> 5.86 here
    assert [entry["name"] for entry in json.loads(_run("models", "list", "--json"))] == ["toy"]

    model = "{provider: transformers, name: 'registry:toy', max_tokens: 12, temperature: 0}"
    write_spec("toy", f"name: Toy\ninstructions: You sell lanterns.\nmodel: {model}\n")
    answer = json.loads(_run("chat", "toy", "-m", "What does the Harbour lantern cost?", "--json"))
    assert answer["gpt"] == "toy" and answer["usage"]["completion_tokens"] > 0
