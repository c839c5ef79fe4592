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
