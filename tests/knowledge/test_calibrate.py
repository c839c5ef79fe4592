"""Calibrating min_score: the verdict, the suggested floor and the trade-off when nothing separates."""

from __future__ import annotations

from dataclasses import dataclass

from gptbuilder.knowledge.calibrate import Calibration, calibrate, questions_from_tests
from gptbuilder.spec import TestCase


def test_a_gap_gives_a_floor_inside_it_that_refuses_only_off_topic():
    result = Calibration("e", {"returns?": 0.61, "delivery?": 0.48}, {"capital?": 0.12, "poem?": 0.3})
    assert result.separates
    assert result.suggested == 0.39
    assert result.refused(0.39) == ([], [])
    assert result.to_dict()["suggested_min_score"] == 0.39


def test_overlap_has_no_suggestion_and_the_least_wrong_floor_counts_both_mistakes():
    result = Calibration(
        "e",
        {"a": 0.5, "b": 0.45, "c": 0.2},
        {"x": 0.48, "y": 0.1, "z": 0.05},
    )
    assert not result.separates and result.suggested is None
    # Letting "x" through is the one mistake nothing avoids; the floor sits mid-gap above the other off-topic.
    assert result.least_wrong() == 0.15
    assert result.refused(0.15) == ([], ["x"])
    assert result.to_dict()["least_wrong_min_score"] == 0.15


def test_least_wrong_prefers_the_lower_floor_on_a_tie():
    result = Calibration("e", {"a": 0.3}, {"x": 0.4})
    # Either floor makes one mistake; the lower one answers the real question.
    assert result.least_wrong() == 0.15
    assert result.refused(result.least_wrong()) == ([], ["x"])


def test_no_off_topic_questions_never_separates():
    assert not Calibration("e", {"a": 0.5}, {}).separates


def test_questions_from_tests_splits_on_expected_refusals_and_skips_curated_answers():
    cases = [
        TestCase.model_validate({"ask": "When do you open?", "expect": {"contains": ["9"]}}),
        TestCase.model_validate({"ask": "Who won the cup?", "expect": {"refuses": True}}),
        TestCase.model_validate({"ask": "Hello", "retrieves": ["faq.md"]}),
        TestCase.model_validate({"ask": "Return window?", "expect": {"curated": True}}),
    ]
    assert questions_from_tests(cases) == (["When do you open?", "Hello"], ["Who won the cup?"])


@dataclass
class _Hit:
    similarity: float


class _Embedder:
    name = "stub-embedder"


class _Index:
    """Scores a question by a table, as the knowledge index's search would."""

    embedder = _Embedder()

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def search(self, query: str) -> list[_Hit]:
        return [_Hit(s) for s in self.table.get(query, [])]


def test_calibrate_keeps_each_questions_best_hit_and_counts_repeats_once():
    index = _Index({"on": [0.2, 0.7, 0.5], "off": [0.1], "empty": []})
    result = calibrate(index, ["on", "on"], ["off", "empty"])  # type: ignore[arg-type]
    assert result.embedder == "stub-embedder"
    assert result.on_topic == {"on": 0.7}
    assert result.off_topic == {"off": 0.1, "empty": 0.0}
    assert result.separates
