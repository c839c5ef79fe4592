"""The turn's plumbing: options, output stages, backend error translation and finish reasons."""

from __future__ import annotations

import pytest

from gptbuilder.errors import InputError, ModelError
from gptbuilder.events import Citation, Done, TextDelta, Usage
from gptbuilder.turn import Options, RunResult, from_backend, normal_finish_reason, through
from tests.turn.helpers import HoldAll, drain


def run(*pieces: str, result: RunResult | None = None):
    for piece in pieces:
        yield TextDelta(piece)
    return result or RunResult("length", Usage(3, len(pieces)))


class Upper:
    """An output stage that changes text as it passes."""

    halted = None

    def feed(self, event):
        return (TextDelta(event.text.upper()),) if isinstance(event, TextDelta) else (event,)

    def finish(self):
        return (TextDelta("!"),)


def test_options_pass_only_what_was_given():
    assert Options().model_kwargs() == {}
    assert Options(temperature=0.0, stop=("x",), seed=7).model_kwargs() == {"temperature": 0.0, "stop": ["x"], "seed": 7}


def test_through_without_stages_passes_events_and_returns_the_shown_text():
    events, (result, text) = drain(through(run("a", "", "b"), []))
    assert [e.text for e in events] == ["a", "b"], "empty pieces are not shown"
    assert text == "ab" and result.finish_reason == "length" and result.usage == Usage(3, 3)


def test_later_stages_see_what_earlier_ones_let_out_including_their_tails():
    events, (_, text) = drain(through(run("a", "b"), [HoldAll(), Upper()]))
    assert [e.text for e in events] == ["AB", "!"]
    assert text == "AB!"


def test_a_run_that_returns_nothing_counts_as_stopped():
    def bare():
        yield TextDelta("x")

    _, (result, _) = drain(through(bare(), []))
    assert result == RunResult()


def test_closing_the_stream_closes_the_run():
    closed = []

    def endless():
        try:
            while True:
                yield TextDelta("x")
        finally:
            closed.append(True)

    stream = through(endless(), [])
    next(stream)
    stream.close()
    assert closed == [True]


def test_backend_exceptions_become_model_errors_but_ours_stay_ours():
    def broken():
        yield 1
        raise ConnectionError("socket closed")

    with pytest.raises(ModelError, match="acme: the model failed: socket closed"):
        list(from_backend(broken(), "acme"))

    def refusing():
        raise InputError("too long")
        yield  # pragma: no cover

    with pytest.raises(InputError, match="too long"):
        list(from_backend(refusing(), "acme"))


@pytest.mark.parametrize(
    ("reason", "expected"),
    [(None, "stop"), ("eos", "stop"), ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
     ("length", "length"), ("tool_calls", "tool_calls"), ("confirmation_required", "confirmation_required")],
)
def test_finish_reasons_are_normalised_once(reason, expected):
    assert normal_finish_reason(reason) == expected


def test_non_text_events_pass_every_stage_in_order():
    def with_citation():
        yield TextDelta("a")
        yield Citation(1, "f.md", "text")
        return RunResult()

    events, _ = drain(through(with_citation(), [Upper()]))
    assert [type(e) for e in events] == [TextDelta, Citation, TextDelta]
    assert not any(isinstance(e, Done) for e in events)
