"""bench/answers.py without the real model: its question sets hold up against the knowledge files, its
normaliser and claim extractor treat the equivalences it promises alike, and a whole run works on the fake model."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_answers", ROOT / "bench" / "answers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_answers", module)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()
SETS = bench.question_sets()


def test_every_shipped_gpt_with_knowledge_has_a_question_set():
    assert set(bench.knowledge_gpts()) == set(SETS)


@pytest.mark.parametrize("gpt_id", sorted(SETS))
def test_question_set_is_well_formed_and_its_facts_are_in_their_sources(gpt_id):
    items = SETS[gpt_id]
    assert isinstance(items, list) and len(items) >= 15, f"{gpt_id}: at least 15 questions"
    questions = [item["question"] for item in items]
    assert len(set(questions)) == len(questions) or any(item.get("history") for item in items)
    for item in items:
        assert set(item) <= {"question", "facts", "source", "history"}, item
        assert item["question"].strip() and item["facts"], item
        assert item["source"].startswith(f"knowledge/{gpt_id}/"), item
        source = (bench.spec_path(gpt_id).parent / item["source"]).read_text(encoding="utf-8")
        for fact in item["facts"]:
            assert bench.has_fact(source, fact), f"{gpt_id}: {fact!r} is not in {item['source']}"
        for turn in item.get("history") or []:
            assert turn["role"] in ("user", "assistant") and turn["content"].strip()
        if item.get("history"):
            assert item["history"][-1]["role"] == "assistant"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("£42", "42 pounds"),
        ("£42", "£42.00"),
        ("£42", "GBP 42"),
        ("€4.90", "4.90 euros"),
        ("€4.90", "4,90 €".replace(",", ".")),
        ("30 days", "thirty days"),
        ("30 days", "30-day"),
        ("7:00", "7am"),
        ("7:00", "7 a.m."),
        ("07:00", "7:00"),
        ("14:00", "2pm"),
        ("9:00–17:00", "9am to 5pm"),
        ("50%", "50 percent"),
        ("600–1,200 words", "600 to 1200 words"),
        ("5 working days", "five business days"),
        ("+49 341 555 0100", "+49 3415550100"),
        ("one-hour", "1 hour"),
        ("60 s", "60 seconds"),
        ("numéro de suivi", "Numero de suivi"),
        ("http://127.0.0.1:7860", "127.0.0.1:7860"),
        ("SUPPORT@acme-shoes.example", "support@acme-shoes.example"),
        ("328元", "328 元"),
        ("3天", "三天"),
        ("21:00", "晚上9点"),
        ("7:30", "早上七点半"),
        ("1个月", "一个月"),
        ("48小时", "48 小时"),
    ],
)
def test_normaliser_equivalences(one, other):
    assert bench.normalise(one) == bench.normalise(other)
    assert bench.has_fact(f"The answer is {other}.", one)


@pytest.mark.parametrize(
    ("answer", "fact"),
    [("It costs €200.", "€20"), ("within 130 days", "30 days"), ("£42", "€42"), ("0.35", "0.3"), ("7pm", "7:00")],
)
def test_a_fact_is_not_found_inside_another(answer, fact):
    assert not bench.has_fact(answer, fact)


def test_claims_are_extracted_normalised_and_without_markers_or_code():
    answer = (
        "A cake for 16 people is £2.40 [1]. Call +44 20 7946 0321 or write to a@b.example, 7am–6pm, "
        "on 3 March; see shop.example/cakes. It needs utf-8 and SmolLM2-135M.\n"
        "1. first step\n```python\nx = 999\n```"
    )
    assert bench.claims(answer) == {
        "number:16", "price:2.4 gbp", "phone:+442079460321", "email:a@b.example", "time:7:00", "time:18:00",
        "date:3 march", "url:shop.example/cakes",
    }


def test_unsupported_claims_are_those_the_sources_do_not_hold():
    sources = "Sponge cakes serve 8 (£24) or 16 (£42). Order 3 days ahead. Open 7:00–18:00. Delivery in 3–5 working days."
    assert bench.unsupported("A cake for 16 people is £2.40.", sources) == ["price:2.4 gbp"]
    assert bench.unsupported("It is forty-two pounds, order three days ahead, open 7am to 6pm.", sources) == []
    assert bench.unsupported("Delivery takes 3 working days; 5 in all.", sources) == []
    assert bench.unsupported("Order 4 days ahead.", sources) == ["number:4 day"]
    # A passage cut from a longer file may end one code block and open another: all of it supports.
    cut = "x = 1\n```\nThe build takes about 6 minutes on 2 cores.\n```python\ny = 2"
    assert bench.unsupported("It takes 6 minutes.", cut) == []
    assert bench.unsupported("Run it:\n```python\nsleep(99)\n```", "") == []


def test_chinese_claims_and_facts():
    sources = "10寸适合12至16人，售价328元。生日蛋糕需至少提前48小时预订。周六、周日8:00至21:00营业。"
    assert bench.unsupported("10寸蛋糕328元，提前48小时预订，晚上九点关门。", sources) == []
    assert bench.unsupported("10寸蛋糕只要2.40元。", sources) == ["price:2.4 cny"]
    assert not bench.has_fact("售价1328元", "328元")
    assert bench.has_fact("本店2012年开业", "2012")


def test_a_run_on_the_fake_model_records_every_answer(tmp_path):
    """The bench's own path (spec in a mode, compile, stream, score) on the fake model and embedder."""
    from gptbuilder.agent import compile_agent
    from gptbuilder.knowledge.embeddings import FakeEmbedder
    from gptbuilder.loader import load_spec

    loaded = load_spec(bench.GPTS / "acme-support.yaml")
    fake = loaded.spec.model.model_copy(update={"provider": "fake", "options": {"replies": ["Returns: 30 days, £9.99 [1]."]}})
    loaded = bench.spec_in_mode(loaded, "generate", curated=False, tools=False)
    assert loaded.spec.knowledge.answer_mode == "generate" and not loaded.spec.tools and not loaded.spec.curated_answers
    # The fake embedder's vectors mean nothing: keyword search finds the returns policy instead.
    knowledge = loaded.spec.knowledge.model_copy(update={"search": "bm25", "min_score": None})
    loaded = dataclasses.replace(loaded, spec=loaded.spec.model_copy(update={"model": fake, "knowledge": knowledge}))
    agent = compile_agent(loaded, data_dir=tmp_path, embedder=FakeEmbedder())
    item = SETS["acme-support"][0]
    record = bench.ask(agent, item, loaded.instructions)
    assert record["answer"] == "Returns: 30 days, £9.99 [1]."
    assert record["correct"] is True
    assert record["source_retrieved"] is True
    assert record["unsupported_claims"] == ["price:9.99 gbp"]
    assert record["ttft_s"] is not None and record["total_s"] >= record["ttft_s"]
    summary = bench.summary([record])
    assert (summary["n"], summary["correct"], summary["unsupported"]) == (1, 1, 1)
