"""Curated answers: semantic matching, thresholds, and the agent answering them without the model."""

from __future__ import annotations

import pytest

from gptbuilder.agent import compile_agent
from gptbuilder.curated import CuratedAnswers
from gptbuilder.errors import SpecError
from gptbuilder.events import Citation, Curated, Done, TextDelta
from gptbuilder.knowledge.embeddings import FakeEmbedder
from gptbuilder.loader import load_spec
from gptbuilder.spec import CuratedAnswer

SPEC = """
name: Shop
instructions: Help customers.
model: {provider: fake, options: {replies: ["from the model"]}}
curated_answers:
  - {question: "What is your return window?", answer: "30 days from delivery."}
  - {question: "Do you ship to Canada?", answer: "Yes, in 5-8 business days.", threshold: 0.99}
"""


def pairs(*items: tuple[str, str]) -> list[CuratedAnswer]:
    return [CuratedAnswer(question=q, answer=a) for q, a in items]


def test_the_closest_question_above_the_threshold_answers():
    curated = CuratedAnswers(
        pairs(("What is your return window?", "30 days."), ("How long is the warranty?", "2 years.")),
        FakeEmbedder(),
        threshold=0.7,
    )
    match = curated.match("what is the return window")
    assert match is not None and match.answer == "30 days." and 0.7 <= match.score < 1
    assert curated.match("  WHAT is your   return window?  ").score == pytest.approx(1.0)
    assert curated.match("tell me a joke about cats") is None
    assert curated.match("   ") is None


def test_a_pair_can_demand_a_closer_match_than_the_spec():
    strict = [CuratedAnswer(question="What is your return window?", answer="30 days.", threshold=0.99)]
    curated = CuratedAnswers(strict, FakeEmbedder(), threshold=0.5)
    assert curated.match("what is the return window") is None
    assert curated.match("What is your return window?") is not None


def test_questions_are_embedded_once():
    class Counting(FakeEmbedder):
        calls = 0

        def embed(self, texts):
            Counting.calls += len(texts)
            return super().embed(texts)

    curated = CuratedAnswers(pairs(("a b c", "x"), ("d e f", "y")), Counting(), threshold=0.8)
    for _ in range(3):
        curated.match("a b c")
    assert Counting.calls == 2 + 3


def test_a_match_answers_without_the_model_and_is_marked(write_spec):
    agent = compile_agent(load_spec(write_spec("shop", SPEC)), embedder=FakeEmbedder())
    events = list(agent.stream("what is your return window"))
    assert [type(e) for e in events] == [Curated, TextDelta, Done]
    assert events[0].question == "What is your return window?" and events[0].score >= 0.8
    assert events[0].to_dict()["type"] == "curated"
    assert events[1].text == events[2].text == "30 days from delivery."
    assert events[2].usage.total_tokens == 0


def test_no_match_goes_to_the_model(write_spec):
    agent = compile_agent(load_spec(write_spec("shop", SPEC)), embedder=FakeEmbedder())
    events = list(agent.stream("do you ship parcels to canada"))  # similar, but that pair asks for 0.99
    assert not any(isinstance(e, Curated) for e in events)
    assert events[-1].text == "from the model"


def test_only_the_latest_message_is_matched(write_spec):
    agent = compile_agent(load_spec(write_spec("shop", SPEC)), embedder=FakeEmbedder())
    history = [
        {"role": "user", "content": "What is your return window?"},
        {"role": "assistant", "content": "30 days from delivery."},
        {"role": "user", "content": "thanks, and what colours do boots come in"},
    ]
    assert agent.chat(history).text == "from the model"


def test_curated_answers_come_before_knowledge_retrieval(write_spec, gpts_dir):
    (gpts_dir / "kb").mkdir()
    (gpts_dir / "kb" / "returns.md").write_text("# Returns\nReturns are accepted within 30 days.\n")
    text = SPEC + "knowledge: {files: [kb/*.md], embedding_model: fake}\n"
    agent = compile_agent(load_spec(write_spec("shop", text)))
    events = list(agent.stream("What is your return window?"))
    assert isinstance(events[0], Curated) and not any(isinstance(e, Citation) for e in events)


def test_spec_threshold_is_configurable_and_bounded(write_spec):
    loaded = load_spec(write_spec("shop", SPEC + "curated_threshold: 0.3\n"))
    agent = compile_agent(loaded, embedder=FakeEmbedder())
    assert agent.curated.threshold == 0.3
    assert agent.chat("return window please").text == "30 days from delivery."
    with pytest.raises(SpecError, match=r"curated_threshold: Input should be less than or equal to 1"):
        load_spec(write_spec("shop", SPEC + "curated_threshold: 1.5\n"))


def test_duplicate_questions_are_a_validation_error(write_spec):
    text = SPEC + '  - {question: "  what is your RETURN window?", answer: "Other."}\n'
    with pytest.raises(SpecError) as exc:
        load_spec(write_spec("shop", text))
    (problem,) = exc.value.problems
    assert problem.field == "curated_answers"
    assert "duplicate question" in problem.message and "RETURN window" in problem.message


@pytest.mark.slow
def test_paraphrases_match_with_the_real_embedder_and_model(write_spec):
    """End to end on the default embedder (all-MiniLM) and the embedded model."""
    text = SPEC.replace('model: {provider: fake, options: {replies: ["from the model"]}}', "model: {max_tokens: 8}")
    agent = compile_agent(load_spec(write_spec("shop", text)))
    curated = list(agent.stream("What's your return window?"))
    assert isinstance(curated[0], Curated) and curated[-1].text == "30 days from delivery."
    other = list(agent.stream("Write a haiku about the sea."))
    assert not any(isinstance(e, Curated) for e in other)
    assert other[-1].usage.completion_tokens > 0  # the real model answered
