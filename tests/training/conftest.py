"""The embedded model's tokenizer, read once per session (the weights are never loaded here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "training"


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from gptbuilder.models.embedded import default_model_path
    from gptbuilder.training.base import _tokenizer

    return _tokenizer("", str(default_model_path()))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder of a ~100k-parameter random Llama with a small BPE trained on the shop's text: steps take ms."""
    from gptbuilder.training.pretrain import Size, build_model, train_tokenizer

    folder = tmp_path_factory.mktemp("tiny-base")
    tokenizer = train_tokenizer([(FIXTURES / "shop.md").read_text(encoding="utf-8")], 400)
    tokenizer.save_pretrained(folder)
    build_model(Size(hidden=32, layers=2, heads=2, intermediate=64, vocab=400), tokenizer, context=256, seed=0).save_pretrained(folder)
    return folder
