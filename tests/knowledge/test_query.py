"""The retrieval query of a turn: a follow-up is searched with the user's previous message."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from gptbuilder.knowledge.query import is_follow_up, retrieval_query


def test_a_follow_up_carries_the_previous_question() -> None:
    history = [
        HumanMessage("How much is a cake for 8 people?"),
        AIMessage("An 8-inch cake is £32 [1]."),
        HumanMessage("and for 16 people?"),
    ]
    assert retrieval_query(history) == "How much is a cake for 8 people?\nand for 16 people?"


def test_a_question_that_stands_alone_is_searched_alone() -> None:
    history = [HumanMessage("How much is a cake for 8 people?"), AIMessage("£32"), HumanMessage("When do you open on Sundays?")]
    assert retrieval_query(history) == "When do you open on Sundays?"
    assert retrieval_query([HumanMessage("and for 16 people?")]) == "and for 16 people?"  # nothing before it
    assert retrieval_query([]) == ""


@pytest.mark.parametrize(
    ("text", "follow_up"),
    [
        ("and for 16 people?", True),
        ("What about Saturdays?", True),
        ("Is it vegan?", True),  # "it": about what was asked before
        ("Do you sell vegan cakes?", False),
        ("Vegan?", True),
        ("那16个人的呢？", True),
        ("16个人的呢？", True),
        ("可以用支付宝付款吗？", False),
        ("How do I return a pair of shoes I never wore?", False),
    ],
)
def test_what_reads_as_a_follow_up(text: str, follow_up: bool) -> None:
    assert is_follow_up(text) is follow_up
