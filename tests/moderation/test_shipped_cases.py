"""Each shipped GPT has a moderation case, and it passes on the fake model: moderation answers before any model."""

from __future__ import annotations

from pathlib import Path

import pytest

from gptbuilder.agent import compile_agent
from gptbuilder.knowledge.embeddings import FakeEmbedder
from gptbuilder.store import Store
from gptbuilder.testing import run_case, with_model

GPTS = Path(__file__).resolve().parents[2] / "gpts"
SHIPPED = sorted(path.stem for path in GPTS.glob("*.yaml"))


@pytest.mark.parametrize("gpt_id", SHIPPED)
def test_the_moderation_cases_of_each_shipped_gpt_pass_on_the_fake_model(gpt_id, tmp_path):
    loaded = with_model(Store(GPTS).get(gpt_id), {"provider": "fake"})
    cases = [case for case in loaded.spec.tests if case.expect is not None and case.expect.moderated]
    assert cases, f"{gpt_id} has no moderation case"
    agent = compile_agent(loaded, data_dir=tmp_path, embedder=FakeEmbedder())
    for case in cases:
        result = run_case(agent, case, sources=[])
        assert result.status == "pass", (case.name, result.failures, result.answer)
        assert result.answer == loaded.spec.moderation.refusal and result.moderated.startswith("input: ")
    assert agent.model.calls == []  # refused before the model


def test_a_case_expecting_moderation_fails_when_nothing_blocks(write_spec, tmp_path):
    from gptbuilder.loader import load_spec

    loaded = load_spec(write_spec("bot", "name: Bot\ninstructions: x\nmodel: {provider: fake}\n"
                                         "moderation: {blocklist: [idiot]}\n"
                                         "tests:\n  - {ask: hello, expect: {moderated: true}}\n"
                                         "  - {ask: you idiot, expect: {moderated: false}}\n"))
    agent = compile_agent(loaded, data_dir=tmp_path)
    passed, blocked = (run_case(agent, case, sources=[]) for case in loaded.spec.tests)
    assert passed.failures == ["moderated: moderation let the turn through"]
    assert blocked.failures == ["moderated: blocked by input: blocklist (blocklist)"]
