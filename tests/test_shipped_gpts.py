"""The GPTs the repo ships: all valid, one per store category, and the docs GPT reads the current README."""

from __future__ import annotations

from pathlib import Path

from gptbuilder.store import Store

REPO = Path(__file__).resolve().parents[1]


def test_every_shipped_gpt_is_valid_and_each_category_has_one():
    store = Store(REPO / "gpts")
    assert store.errors() == []
    categories = {s.spec.category for s in store.specs()}
    assert {"customer-service", "content", "coding", "translation", "qa"} <= categories


def test_the_docs_gpt_knowledge_is_the_current_readme():
    """The qa GPT answers from a copy of README.md (knowledge must live in its folder): keep it in step."""
    copy = REPO / "gpts" / "knowledge" / "gptbuilder-docs" / "README.md"
    assert copy.read_text(encoding="utf-8") == (REPO / "README.md").read_text(encoding="utf-8"), (
        "run: cp README.md gpts/knowledge/gptbuilder-docs/README.md"
    )
