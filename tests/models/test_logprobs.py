"""Token log probabilities one step late, handed out with the text they spell; logit_bias on numpy and torch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gptbuilder.models.base import Piece
from gptbuilder.models.logprobs import NO_CHANCE, Aligner, LogprobRecorder, bias_logits

SPELLING = {0: b"Hel", 1: b"lo", 2: b" w\xc3", 3: b"\xa9b", 4: b"!", 5: b""}


def _recorder(top: int = 0) -> LogprobRecorder:
    return LogprobRecorder(lambda token: SPELLING[token], top=top)


def _logits(best: int) -> np.ndarray:
    logits = np.zeros(len(SPELLING), dtype=np.float32)
    logits[best] = 2.0
    return logits


def test_each_token_is_recorded_when_the_next_step_names_it():
    recorder = _recorder(top=2)
    recorder.step(99, _logits(0))  # the first step: the sequence ends with the prompt
    assert recorder.entries == []
    recorder.step(0, _logits(1))
    [hel] = recorder.entries
    expected = 2.0 - math.log(math.exp(2.0) + 5)
    assert hel["token"] == "Hel" and hel["bytes"] == list(b"Hel") and hel["logprob"] == pytest.approx(expected)
    assert [t["token"] for t in hel["top_logprobs"]] == ["Hel", "lo"] and hel["top_logprobs"][0]["logprob"] == hel["logprob"]
    recorder.finish(1)
    assert [e["token"] for e in recorder.entries] == ["Hel", "lo"] and recorder.spelled() == 5


def test_the_last_token_is_found_by_what_it_spells():
    recorder = _recorder()
    recorder.step(99, _logits(4))
    recorder.finish_spelling(b"!")
    assert [e["token"] for e in recorder.entries] == ["!"] and recorder.entries[0]["top_logprobs"] == []
    other = _recorder()
    other.step(99, _logits(4))
    other.finish_spelling(b"nothing spells this")
    assert other.entries == []


def test_a_token_given_no_chance_reports_openais_floor():
    recorder = _recorder()
    logits = _logits(0)
    logits[1] = -np.inf
    recorder.step(99, logits)
    recorder.finish(1)
    assert recorder.entries[0]["logprob"] == NO_CHANCE


def test_text_waits_for_its_tokens_and_comes_out_with_exactly_them():
    recorder = _recorder()
    aligner = Aligner(recorder)
    recorder.step(99, _logits(0))
    assert aligner.feed("Hel") is None  # its token is known only at the next step
    recorder.step(0, _logits(1))
    assert aligner.feed("lo") == Piece("Hel", [recorder.entries[0]])
    recorder.step(1, _logits(2))
    assert aligner.feed(" w") == Piece("lo", [recorder.entries[1]])
    recorder.step(2, _logits(3))  # " w\xc3": half of é, which the text holds back whole
    assert aligner.feed("éb") == Piece(" w", [recorder.entries[2]])
    recorder.step(3, _logits(4))
    assert aligner.feed("!") == Piece("éb", [recorder.entries[3]])
    assert aligner.tail() == b"!"
    recorder.finish_spelling(aligner.tail())
    assert aligner.flush() == Piece("!", [recorder.entries[4]])
    assert aligner.flush() is None


def test_tokens_past_the_text_are_dropped():
    recorder = _recorder()
    aligner = Aligner(recorder)
    recorder.step(99, _logits(0))
    recorder.step(0, _logits(1))
    recorder.step(1, _logits(4))  # "Hello" was sampled, but a stop string kept "lo" from the text
    assert aligner.feed("Hel") == Piece("Hel", [recorder.entries[0]])
    recorder.finish(4)
    assert aligner.flush() is None


def test_logit_bias_adds_to_numpy_and_torch_logits():
    biased = bias_logits(np.zeros(4, dtype=np.float32), {1: 5.0, 3: -100.0})
    assert biased.tolist() == [0.0, 5.0, 0.0, -100.0]
    torch = pytest.importorskip("torch")
    scores = bias_logits(torch.zeros(1, 4), {2: 1.5})
    assert scores.tolist() == [[0.0, 0.0, 1.5, 0.0]]
    assert bias_logits(np.ones(2), {}).tolist() == [1.0, 1.0]
