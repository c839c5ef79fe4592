"""Calibrating `min_score` for one GPT's embedder: does similarity tell its questions from off-topic ones?

A similarity floor only refuses well when the questions a GPT's knowledge answers score above every
question it does not. Where that holds depends on the embedder and the language (all-MiniLM-L6-v2 scores
off-topic Chinese questions as high as right ones), so the floor is measured per GPT rather than guessed:
the on-topic questions are the spec's own test cases but curated ones (and any the caller adds), the off-topic ones are
the cases that expect a refusal plus a fixed set of everyday questions in English and Chinese.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..spec import TestCase
    from .index import KnowledgeIndex

# Questions no shop, manual or policy answers; similarity to them is what a floor must stay above.
OFF_TOPIC: tuple[str, ...] = (
    "What is the capital of Australia?",
    "How do I change a flat tyre on my car?",
    "Who won the football world cup in 2018?",
    "What is a good recipe for lasagne?",
    "How far is the Moon from the Earth?",
    "Can you recommend a film to watch tonight?",
    "How do I reset my home Wi-Fi router?",
    "What are the symptoms of the flu?",
    "Write me a poem about the sea.",
    "What is the exchange rate of the yen today?",
    "澳大利亚的首都是哪里？",
    "汽车轮胎漏气了怎么换？",
    "今天的天气怎么样？",
    "推荐一部今晚看的电影。",
    "月球离地球有多远？",
    "怎么重置家里的无线路由器？",
    "感冒有哪些症状？",
    "给我写一首关于大海的诗。",
)


@dataclass(frozen=True)
class Calibration:
    """Each question's best similarity among its hits: those the knowledge answers, and the off-topic ones."""

    embedder: str
    on_topic: dict[str, float]
    off_topic: dict[str, float]

    @property
    def separates(self) -> bool:
        """Whether every on-topic question scores above every off-topic one."""
        return bool(self.on_topic) and bool(self.off_topic) and min(self.on_topic.values()) > max(self.off_topic.values())

    @property
    def suggested(self) -> float | None:
        """A floor halfway across the gap, when there is one (rounded down, so it never cuts an on-topic question)."""
        if not self.separates:
            return None
        low, high = max(self.off_topic.values()), min(self.on_topic.values())
        return int((low + high) / 2 * 100) / 100

    def refused(self, floor: float) -> tuple[list[str], list[str]]:
        """At ``floor``: the on-topic questions it would refuse, and the off-topic ones it would let through."""
        cut = [q for q, s in self.on_topic.items() if s < floor]
        through = [q for q, s in self.off_topic.items() if s >= floor]
        return cut, through

    def least_wrong(self) -> float:
        """The floor with the fewest mistakes (refused on-topic plus admitted off-topic), the lower one on a tie.

        Floors are tried in the middle of each gap between two scores, so the one chosen is not a hair above
        a question it decides on.
        """
        scores = sorted({0.0, *self.on_topic.values(), *self.off_topic.values()})
        floors = [_between(low, high) for low, high in pairwise(scores)] or [0.0]
        return min(floors, key=lambda floor: sum(map(len, self.refused(floor))))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the scores, the verdict and the suggested floor."""
        return {
            "embedder": self.embedder,
            "on_topic": self.on_topic,
            "off_topic": self.off_topic,
            "separates": self.separates,
            "suggested_min_score": self.suggested,
            "least_wrong_min_score": self.least_wrong(),
        }


def questions_from_tests(cases: Iterable[TestCase]) -> tuple[list[str], list[str]]:
    """The spec's test questions: (on-topic, off-topic), off-topic being those that expect a refusal.

    A case answered from the curated answers never reaches the search, so its similarity says nothing.
    """
    on: list[str] = []
    off: list[str] = []
    for case in cases:
        if case.expect is not None and case.expect.curated:
            continue
        (off if case.expect is not None and case.expect.refuses else on).append(case.ask)
    return on, off


def calibrate(index: KnowledgeIndex, on_topic: Sequence[str], off_topic: Sequence[str]) -> Calibration:
    """Search each question as chat would (the spec's search and top_k) and keep its best similarity."""

    def best(question: str) -> float:
        return max((hit.similarity for hit in index.search(question)), default=0.0)

    return Calibration(
        index.embedder.name,
        {q: round(best(q), 4) for q in dict.fromkeys(on_topic)},
        {q: round(best(q), 4) for q in dict.fromkeys(off_topic)},
    )


def _between(low: float, high: float) -> float:
    middle = round((low + high) / 2, 3)
    return middle if low < middle <= high else high
