"""The entailment check of verified answers: an NLI cross-encoder asked whether the sources entail a sentence.

Claims (amounts, times, names) are checked exactly by `knowledge.claims`; what they cannot see, such as "refunds
are not possible" against "refunds within 30 days", an NLI model can. `knowledge.entailment` names the model
(a folder, or one in the local Hugging Face cache; never downloaded) and the least probability of entailment
a sentence needs; the faithfulness guard (`turn.grounding`) asks it about each sentence it would show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import ModelError
from .rerank import CrossEncoderModel, spec_error

if TYPE_CHECKING:
    from ..loader import LoadedSpec


class EntailmentCheck(Protocol):
    """What the faithfulness guard needs: a probability that premises entail a sentence, and the least it accepts."""

    threshold: float

    def probability(self, premises: Sequence[str], hypothesis: str) -> float:
        """The highest probability that one of ``premises`` entails ``hypothesis``, 0..1."""
        ...


class Entailment(CrossEncoderModel):
    """An NLI cross-encoder: labels such as contradiction / entailment / neutral, or one output that is entailment."""

    def __init__(self, name: str, *, base_dir: Path | None = None, threshold: float = 0.5,
                 field: str = "knowledge.entailment.model", trusted: bool = True):
        super().__init__(name, base_dir=base_dir, field=field, trusted=trusted)
        self.threshold = threshold
        found = [n for n, label in enumerate(self.labels) if label.lower().startswith("entail")]
        if len(self.labels) > 1 and not found:
            raise ModelError(
                f"{field}: {name!r} is not an NLI model: its labels are {', '.join(self.labels)}, none of them entailment "
                "(a natural-language-inference cross-encoder, e.g. cross-encoder/nli-deberta-v3-xsmall, has one)"
            )
        self._entails = found[0] if found else 0

    def probability(self, premises: Sequence[str], hypothesis: str) -> float:
        """The highest probability, over the premises, that the premise entails the hypothesis."""
        rows = self.logits([(premise, hypothesis) for premise in premises])
        return max((self._chance(row) for row in rows), default=0.0)

    def _chance(self, row: list[float]) -> float:
        if len(row) == 1:
            return 1.0 / (1.0 + math.exp(-row[0]))
        top = max(row)
        weights = [math.exp(v - top) for v in row]
        return weights[self._entails] / sum(weights)


def entailment_for(loaded: LoadedSpec) -> Entailment | None:
    """The entailment check a spec's `knowledge.entailment` asks for (None without one); SpecError when unusable."""
    config = loaded.spec.knowledge.entailment if loaded.spec.knowledge else None
    if config is None:
        return None
    try:
        return Entailment(config.model, base_dir=loaded.folder, threshold=config.threshold, trusted=loaded.trusted)
    except ModelError as exc:
        raise spec_error(loaded, exc) from exc
