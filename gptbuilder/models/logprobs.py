"""Token log probabilities for in-process models, in OpenAI's `logprobs.content` shape, and `logit_bias`.

Both backends run a logits processor at every sampling step. It sees the step's logits, but learns which
token the step chose only at the next step (the last token of the sequence it is given then), so
`LogprobRecorder` keeps one step's log probabilities until its token is known; the backend names the
very last token at the end. `Aligner` then hands the decoded text out with exactly the tokens that spell
it, holding text back until its tokens are known (one token's delay, only when log probabilities are asked).
llama.cpp's own logprobs are not used: they need `logits_all`, a buffer of context × vocabulary floats
(800 MB for the embedded model).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .base import Piece

if TYPE_CHECKING:
    import numpy as np

# OpenAI reports a token the model gave no chance as -9999.0 (JSON has no -infinity).
NO_CHANCE = -9999.0
MAX_TOP_LOGPROBS = 20
# How far down the last step's ranking the final token is looked for (sampling keeps the top 40).
_LAST_TOKEN_CANDIDATES = 64


class LogprobRecorder:
    """Collects each chosen token's log probability and its most likely alternatives, one step late."""

    def __init__(self, token_bytes: Callable[[int], bytes], *, top: int = 0):
        self.token_bytes = token_bytes
        self.top = min(max(top, 0), MAX_TOP_LOGPROBS)
        self.entries: list[dict[str, Any]] = []
        self._previous: np.ndarray | None = None  # the last step's log probabilities, until its token is known

    def step(self, chosen_before: int, logits: np.ndarray) -> None:
        """Record a sampling step's logits; ``chosen_before`` is the sequence's last token (the previous step's choice)."""
        if self._previous is not None:
            self.entries.append(self._entry(chosen_before, self._previous))
        self._previous = _log_softmax(logits)

    def finish(self, token: int | None) -> None:
        """The final step chose ``token`` (None: unknown, or an end-of-text token that spells nothing)."""
        if self._previous is not None and token is not None:
            self.entries.append(self._entry(token, self._previous))
        self._previous = None

    def finish_spelling(self, tail: bytes) -> None:
        """End with the final token found by what it spells: the text's bytes the recorded tokens do not cover."""
        token = None
        if tail and self._previous is not None:
            import numpy as np

            ranked = np.argsort(-self._previous)[:_LAST_TOKEN_CANDIDATES]
            token = next((int(i) for i in ranked if self.token_bytes(int(i)) == tail), None)
        self.finish(token)

    def spelled(self) -> int:
        """Bytes the recorded tokens spell."""
        return sum(len(entry["bytes"]) for entry in self.entries)

    def _entry(self, token: int, logprobs: np.ndarray) -> dict[str, Any]:
        entry = self._describe(token, float(logprobs[token]))
        if self.top:
            import numpy as np

            best = np.argpartition(-logprobs, self.top)[: self.top]
            best = best[np.argsort(-logprobs[best])]
            entry["top_logprobs"] = [self._describe(int(i), float(logprobs[i])) for i in best]
        else:
            entry["top_logprobs"] = []
        return entry

    def _describe(self, token: int, logprob: float) -> dict[str, Any]:
        spelled = self.token_bytes(token)
        return {
            "token": spelled.decode("utf-8", errors="replace"),
            "logprob": logprob if logprob > NO_CHANCE else NO_CHANCE,
            "bytes": list(spelled),
        }


class Aligner:
    """Releases decoded text with the log probabilities of the tokens that spell it."""

    def __init__(self, recorder: LogprobRecorder):
        self.recorder = recorder
        self.pending = ""
        self._emitted = 0  # bytes of text released
        self._given = 0  # entries released
        self._given_end = 0  # bytes those entries spell

    def feed(self, text: str) -> Piece | None:
        """Take decoded text; release what the known tokens spell so far."""
        self.pending += text
        known = self.recorder.spelled() - self._emitted
        size = 0
        for char in self.pending:
            width = len(char.encode("utf-8"))
            if width > known:
                break
            known -= width
            size += 1
        return self._release(size)

    def tail(self) -> bytes:
        """The text's bytes beyond what the recorded tokens spell (the last token's, once decoding ended)."""
        spelled = self.recorder.spelled() - self._emitted
        return self.pending.encode("utf-8")[max(spelled, 0) :]

    def flush(self) -> Piece | None:
        """Release the rest of the text with every token that starts inside it; tokens past it were cut (a stop)."""
        return self._release(len(self.pending))

    def _release(self, size: int) -> Piece | None:
        text, self.pending = self.pending[:size], self.pending[size:]
        self._emitted += len(text.encode("utf-8"))
        entries = self.recorder.entries
        start = self._given
        while self._given < len(entries) and self._given_end < self._emitted:
            self._given_end += len(entries[self._given]["bytes"])
            self._given += 1
        given = entries[start : self._given]
        if not text and not given:
            return None
        return Piece(text, given)


def bias_logits(logits: Any, bias: Mapping[int, float]) -> Any:
    """``logits`` (a numpy array or torch tensor of one step) with `logit_bias` added."""
    if bias:
        logits[..., list(bias)] += _as_like(logits, list(bias.values()))
    return logits


def _as_like(logits: Any, values: list[float]) -> Any:
    if hasattr(logits, "new_tensor"):  # torch
        return logits.new_tensor(values)
    import numpy as np

    return np.asarray(values, dtype=logits.dtype)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    import numpy as np

    values = np.asarray(logits, dtype=np.float64)
    top = float(np.max(values))
    return values - (top + float(np.log(np.sum(np.exp(values - top)))))
