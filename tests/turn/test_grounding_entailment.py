"""The faithfulness guard's entailment check (`knowledge.entailment`): sentences whose claims pass are also held to
an NLI model's judgement of the sources, still released one sentence at a time."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gptbuilder.agent import compile_agent
from gptbuilder.errors import SpecError
from gptbuilder.events import Grounding, TextDelta, ToolResult
from gptbuilder.knowledge.embeddings import FakeEmbedder
from gptbuilder.knowledge.entailment import Entailment
from gptbuilder.knowledge.retriever import Source
from gptbuilder.loader import load_spec
from gptbuilder.turn.grounding import VerifyGuard
from tests.knowledge.tiny_cross_encoder import save_tiny_cross_encoder

from .test_grounding import run

REFUNDS = Source(1, "knowledge/refunds.md", "# Refunds\nRefunds are paid to your card within 5 working days.\n", {}, 0.8)
QUESTION = "How do refunds work?"


class WordsEntail:
    """A stand-in NLI model: a premise entails a sentence when it holds every content word of it."""

    threshold = 0.5

    def __init__(self):
        self.asked: list[tuple[list[str], str]] = []

    def probability(self, premises: Sequence[str], hypothesis: str) -> float:
        self.asked.append((list(premises), hypothesis))
        wanted = {w.strip(".,:").lower() for w in hypothesis.split() if len(w) > 3}
        return max((1.0 if wanted <= {w.strip(".,:").lower() for w in p.split()} else 0.1 for p in premises), default=0.0)


def guard(check, unsupported="quote", sources=(REFUNDS,)):
    return VerifyGuard(sources, QUESTION, unsupported=unsupported, entailment=check)


def text(after_each, tail):
    return "".join(after_each) + "".join(e.text for e in tail if isinstance(e, TextDelta))


def test_a_sentence_with_no_wrong_number_but_a_wrong_meaning_is_quoted_over():
    check = WordsEntail()
    after_each, tail = run(guard(check), ["Refunds are paid to your card. ", "Refunds are never paid back."])
    assert after_each == ["", "Refunds are paid to your card. "]  # still one sentence at a time
    assert text(after_each, tail) == "Refunds are paid to your card. Refunds are paid to your card within 5 working days. [1]"
    [change] = tail[-1].changes
    assert change["sentence"] == "Refunds are never paid back." and change["action"] == "quoted"
    assert change["unsupported"] == [] and change["entailment"] == 0.1


def test_each_premise_is_read_alone_and_together_and_drop_and_mark_apply():
    check = WordsEntail()
    shop = Source(2, "shop.md", "# Shop\nWe open at 7am. Refunds need the receipt.", {}, 0.6)
    run(guard(check, sources=(REFUNDS, shop)), ["Refunds are paid to your card."])
    premises, hypothesis = check.asked[0]
    assert hypothesis == "Refunds are paid to your card."
    assert premises[0] == "Refunds: Refunds are paid to your card within 5 working days." and premises[-1].count("Refunds") >= 3
    _, tail = run(guard(WordsEntail(), "drop"), ["Refunds are never paid back."])
    assert tail[-1].changes[0]["action"] == "dropped"
    after_each, tail = run(guard(WordsEntail(), "mark"), ["Refunds are never paid back."])
    assert "never paid back. *(not confirmed" in text(after_each, tail) and tail[-1].changes[0]["entailment"] == 0.1


def test_small_talk_and_questions_are_not_held_to_the_sources():
    check = WordsEntail()
    _, tail = run(guard(check), ["Hope this helps! ", "Do you want the refund form?"])
    assert check.asked == [] and tail[-1].changes == ()


def test_a_sentence_with_an_unsupported_claim_is_fixed_without_asking_the_model():
    check = WordsEntail()
    _, tail = run(guard(check), ["Refunds are paid within 9 working days."])
    assert check.asked == [] and tail[-1].changes[0]["unsupported"] == ["9 working days"]
    assert "entailment" not in tail[-1].changes[0]


def test_a_tool_result_can_entail_a_sentence():
    check = WordsEntail()
    stage = guard(check)
    list(stage.feed(ToolResult("t1", "orders", "Order 7 refund status: approved yesterday.")))
    _, tail = run(stage, ["Your refund status: approved yesterday."])
    assert tail[-1].changes == ()


# ----- a real (tiny) NLI model from a folder, through the spec --------------------------------------


SPEC = """name: Shop
instructions: Answer from the files.
model: {{provider: fake, options: {{replies: [{reply!r}]}}}}
knowledge:
  files: [knowledge/*.md]
  entailment: {{model: {model}, threshold: {threshold}}}
"""


@pytest.fixture
def shop(write_spec, gpts_dir, tmp_path):
    folder = gpts_dir / "knowledge"
    folder.mkdir(parents=True)
    (folder / "refunds.md").write_text("# Refunds\nRefunds reach your card at the depot.\n", encoding="utf-8")

    def make(reply: str, *, model: str = "models/nli", threshold: float = 0.5):
        spec = SPEC.format(reply=reply, model=model, threshold=threshold)
        return compile_agent(load_spec(write_spec("shop", spec)), data_dir=tmp_path / "data", embedder=FakeEmbedder())

    return make


def test_a_real_nli_model_from_the_spec_checks_each_sentence(shop, gpts_dir):
    # This model's entailment rises with the share of "depot" and "card" in the pair, so the threshold decides.
    save_tiny_cross_encoder(gpts_dir / "models" / "nli", ["depot", "card"], labels=("contradiction", "entailment", "neutral"),
                            entails=1, scale=100.0, offset=-11.0)
    agent = shop("Refunds reach your card at the depot. Refunds are impossible.")
    check = agent.output_guards[0].entailment
    assert isinstance(check, Entailment) and check.labels == ["contradiction", "entailment", "neutral"]
    events = list(agent.stream("how do refunds reach me?"))
    [report] = [e for e in events if isinstance(e, Grounding)]
    [change] = report.changes
    assert change["sentence"] == "Refunds are impossible." and change["entailment"] < 0.5
    assert events[-1].text.startswith("Refunds reach your card at the depot. Refunds reach your card at the depot. [1]")


def test_a_missing_nli_model_folder_is_a_spec_error(shop):
    with pytest.raises(SpecError, match=r"shop.yaml: knowledge.entailment.model: 'models/none' is neither a folder"):
        shop("x", model="models/none")


def test_warming_the_guard_loads_the_entailment_model():
    from gptbuilder.turn.grounding import Verify

    check = WordsEntail()
    Verify(entailment=check).warm()
    Verify().warm()  # nothing to load
    assert len(check.asked) == 1
