"""The faithfulness guard (verified answers) and the extractive runner, as output stage and runner on their own."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from gptbuilder.events import Grounding, TextDelta, ToolResult
from gptbuilder.knowledge.retriever import Retrieval, Source
from gptbuilder.turn import Turn
from gptbuilder.turn.grounding import MARK, Extract, PassThrough, Verify, VerifyGuard
from tests.turn.helpers import drain

CAKES = Source(1, "knowledge/cakes.md", "# Prices\n| Size | Price |\n|---|---|\n| 8 people | £28 |\n| 16 people | £42 |\n", {}, 0.8)
SHOP = Source(2, "knowledge/shop.md", "# Shop\nWe open at 7am and close at 6pm. Orders need 3 days' notice.", {}, 0.6)
QUESTION = "How much is a cake for 16 people?"
WRONG = ["A cake for 16 ", "people costs £2.", "40 [1]. We open at ", "7am.\n", "Thanks!"]


def run(guard, pieces):
    """Feed pieces one by one: what came out after each, then what finish added."""
    after_each = ["".join(e.text for e in guard.feed(TextDelta(p)) if isinstance(e, TextDelta)) for p in pieces]
    tail = list(guard.finish())
    return after_each, tail


def guard(unsupported="quote", sources=(CAKES, SHOP)):
    return VerifyGuard(sources, QUESTION, unsupported=unsupported)


def test_a_wrong_price_is_replaced_by_the_source_sentence_that_states_the_right_one():
    after_each, tail = run(guard("quote"), WRONG)
    shown = "".join(after_each) + "".join(e.text for e in tail if isinstance(e, TextDelta))
    assert "£2.40" not in shown and "Size: 16 people, Price: £42 [1]" in shown and "We open at 7am." in shown
    report = tail[-1]
    assert isinstance(report, Grounding) and report.mode == "verified" and report.sentences == 3
    assert report.changes == ({
        "sentence": "A cake for 16 people costs £2.40 [1].", "unsupported": ["£2.40"], "action": "quoted",
        "replacement": "Size: 16 people, Price: £42 [1]",
    },)


def test_each_sentence_is_released_as_soon_as_it_is_checked():
    after_each, _ = run(guard(), ["We open at 7am. ", "Orders need ", "3 days' notice. And"])
    assert after_each == ["", "We open at 7am. ", "Orders need 3 days' notice. "]  # a sentence waits for the space after it


def test_a_value_in_backticks_is_checked_while_code_is_not():
    shown, tail = run(guard("drop"), ["Set it to `£9` or `price = 99`. It costs `£42` [1]. ", "Done."])
    text = "".join(shown) + "".join(e.text for e in tail if isinstance(e, TextDelta))
    assert "`£9`" not in text and "It costs `£42` [1]." in text
    assert tail[-1].changes[0]["unsupported"] == ["£9"]


def test_drop_and_mark():
    shown, tail = run(guard("drop"), WRONG)
    assert "£2.40" not in "".join(shown) and tail[-1].changes[0]["action"] == "dropped"
    shown, tail = run(guard("mark"), WRONG)
    assert f"costs £2.40 [1].{MARK}" in "".join(shown) and tail[-1].changes[0]["action"] == "marked"


def test_an_answer_with_nothing_supported_becomes_the_sources_own_sentences():
    _, tail = run(guard("drop"), ["It is £9.99."])
    text = "".join(e.text for e in tail if isinstance(e, TextDelta))
    assert "£42 [1]" in text and [c["action"] for c in tail[-1].changes] == ["dropped", "replaced"]


def test_code_blocks_pass_unchecked_and_whole():
    after_each, tail = run(guard(), ["Try:\n```python\nprice = 9", "99\n```\n", "Done."])
    assert after_each == ["Try:\n", "```python\nprice = 999\n```\n", ""]
    assert tail[-1].changes == () and "".join(e.text for e in tail[:-1]) == "Done."


def test_a_tool_result_of_the_turn_counts_as_evidence():
    check = guard()
    assert list(check.feed(ToolResult("t1", "calculator", "1299 * 0.8 = 1039.2"))) != []
    _, tail = run(check, ["That is 1039.2 in total."])
    assert tail[-1].changes == ()


def test_the_question_and_the_instructions_count_as_evidence():
    check = VerifyGuard((CAKES,), "Is the 12 o'clock slot free on 5 May?", unsupported="drop", also_known="Call 0800 123 4567.")
    _, tail = run(check, ["For 12 people on 5 May, call 0800 123 4567."])
    assert tail[-1].changes == ()


def test_turns_without_sources_pass_through_and_private_knowledge_is_never_quoted():
    turn = Turn("g", [HumanMessage(QUESTION)], retrieval=Retrieval(()))
    assert isinstance(Verify()(turn), PassThrough)
    assert Verify(unsupported="quote", private=True).unsupported == "drop"


@pytest.mark.parametrize("question", [QUESTION, "cake price for sixteen people"])
def test_extractive_answers_with_the_best_source_sentence_and_no_model(question):
    turn = Turn("g", [HumanMessage(question)], retrieval=Retrieval((CAKES, SHOP)))
    events, result = drain(Extract()(turn, []))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "£42 [1]" in text and "£2" not in text.replace("£28", "")
    assert isinstance(events[-1], Grounding) and events[-1].mode == "extractive"
    assert result.finish_reason == "stop" and result.usage.total_tokens == 0


def test_a_number_from_another_subject_does_not_back_a_claim():
    warranty = Source(1, "warranty.md", "# Warranty claims\nWe answer within 2 working days.", {}, 0.7)
    refunds = Source(2, "returns.md", "# Refunds\nRefunds go back to the card within 5 working days.", {}, 0.7)
    check = VerifyGuard((warranty, refunds), "How long does a refund take?", unsupported="quote")
    _, tail = run(check, ["A refund takes 2 working days. ", "Refunded money arrives in 5 working days."])
    [change] = tail[-1].changes
    assert change["unsupported"] == ["2 working days"]
    assert change["replacement"] == "Refunds go back to the card within 5 working days. [2]"


def test_a_numbered_list_item_is_one_sentence_and_its_bold_lead_in_no_name():
    # The embedded model answers in lists: "1." used to be a sentence of its own (the number 1, unsupported,
    # dropped) and "**Check" a proper name, so good list items lost their numbers and then themselves.
    answer = ["Here is how:\n\n1. **Check", " the date**: orders need 3 days' notice.\n2. ", "**Don't** wait. We open at 7am.\n"]
    shown, tail = run(guard("drop"), answer)
    whole = "".join(shown) + "".join(e.text for e in tail if isinstance(e, TextDelta))
    assert whole == "".join(answer)
    assert tail[-1].changes == () and tail[-1].sentences == 4
