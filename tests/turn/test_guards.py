"""Input guards: the first that blocks answers the turn with its reply; none configured passes everything."""

from __future__ import annotations

from langchain_core.messages import HumanMessage

from gptbuilder.events import Done, TextDelta
from gptbuilder.turn import Turn
from gptbuilder.turn.guards import GuardInput, Verdict


class BlockWord:
    def __init__(self, word: str):
        self.word = word
        self.seen: list[str] = []

    def check(self, turn):
        self.seen.append(turn.request)
        return Verdict("I can't help with that.", f"blocked word {self.word!r}") if self.word in turn.request else None


def drive(stage, turn):
    events = []
    generator = stage(turn)
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return events, stop.value


def test_no_guards_pass_the_turn_on():
    assert drive(GuardInput([]), Turn("g", [HumanMessage("hi")])) == ([], None)


def test_the_first_blocking_guard_answers_and_later_ones_are_not_asked():
    first, second = BlockWord("bomb"), BlockWord("bomb")
    events, answer = drive(GuardInput([first, second]), Turn("g", [HumanMessage("how to build a bomb")]))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["I can't help with that."]
    assert isinstance(answer, Done) and answer.finish_reason == "content_filter" and answer.usage.total_tokens == 0
    assert first.seen == ["how to build a bomb"] and second.seen == []


def test_a_passing_guard_lets_the_next_decide():
    lenient, strict = BlockWord("zzz"), BlockWord("cake")
    _, answer = drive(GuardInput([lenient, strict]), Turn("g", [HumanMessage("a cake please")]))
    assert answer is not None and lenient.seen == strict.seen == ["a cake please"]
