"""Curated answers: vetted replies given without the model when the user's question matches one closely."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from .knowledge.embeddings import Embedder, get_embedder
from .loader import LoadedSpec
from .spec import CuratedAnswer


@dataclass(frozen=True)
class CuratedMatch:
    """The curated answer chosen for a message, and how similar the message was to its question."""

    question: str
    answer: str
    score: float


class CuratedAnswers:
    """A GPT's curated question/answer pairs, matched by cosine similarity of their embeddings.

    The questions are embedded once, on the first message (loading the embedder may take seconds).
    A pair answers when the similarity reaches its own ``threshold``, else the spec's ``curated_threshold``.
    """

    def __init__(self, answers: Sequence[CuratedAnswer], embedder: Embedder, *, threshold: float):
        self.answers = list(answers)
        self.embedder = embedder
        self.threshold = threshold
        self._vectors: list[list[float]] | None = None
        self._lock = threading.Lock()

    def _question_vectors(self) -> list[list[float]]:
        with self._lock:
            if self._vectors is None:
                self._vectors = self.embedder.embed([_normal(a.question) for a in self.answers])
            return self._vectors

    def scores(self, message: str) -> list[float]:
        """Similarity of the message to each curated question, in spec order."""
        if not self.answers or not message.strip():
            return [0.0] * len(self.answers)
        query = self.embedder.embed([_normal(message)])[0]
        return [float(sum(a * b for a, b in zip(query, vector))) for vector in self._question_vectors()]

    def match(self, message: str) -> CuratedMatch | None:
        """The best curated answer whose threshold the message reaches, or None."""
        best: CuratedMatch | None = None
        for pair, score in zip(self.answers, self.scores(message)):
            threshold = pair.threshold if pair.threshold is not None else self.threshold
            if score >= threshold and (best is None or score > best.score):
                best = CuratedMatch(pair.question, pair.answer, round(score, 4))
        return best


def _normal(text: str) -> str:
    """Case and spacing do not make a question different."""
    return " ".join(text.lower().split())


def curated_answers_for(loaded: LoadedSpec, embedder: Embedder | None = None) -> CuratedAnswers:
    """A spec's curated answers, embedded like its knowledge (``embedder`` overrides, e.g. the fake one)."""
    if embedder is None:
        config = loaded.spec.knowledge
        embedder = get_embedder(config.embedding_model if config else None, base_dir=loaded.folder)
    return CuratedAnswers(loaded.spec.curated_answers, embedder, threshold=loaded.spec.curated_threshold)

