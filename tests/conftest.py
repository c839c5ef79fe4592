"""Shared fixtures: every test works in its own folders, offline, never on the user's files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

# Nothing may reach a model hub; the models tests use ship in PyPI packages.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the GPTs and data folders at tmp_path and drop keys from the environment."""
    (tmp_path / "gpts").mkdir(exist_ok=True)
    monkeypatch.setenv("GPTBUILDER_GPTS_DIR", str(tmp_path / "gpts"))
    monkeypatch.setenv("GPTBUILDER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GPTBUILDER_DATABASE_URL", raising=False)


@pytest.fixture
def gpts_dir(tmp_path: Path) -> Path:
    """The GPTs folder the CLI and store see in this test."""
    return tmp_path / "gpts"


@pytest.fixture
def write_spec(gpts_dir: Path) -> Callable[..., Path]:
    """Write `<gpt_id>.yaml` (into the GPTs folder unless told another) and return its path."""

    def write(gpt_id: str, text: str, folder: Path | None = None) -> Path:
        target = folder or gpts_dir
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{gpt_id}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write
