"""Input guards: the first that blocks answers the turn with its reply; none configured passes everything."""

from __future__ import annotations

from langchain_core.messages import HumanMessage

from gptbuilder.events import Done, TextDelta
from gptbuilder.turn import Turn
from gptbuilder.turn.guards import GuardInput, Verdict
from tests.turn.helpers import drain


class BlockWord:
    def __init__(self, word: str):
        self.word = word
        self.seen: list[str] = []

    def check(self, turn):
        self.seen.append(turn.request)
        return Verdict("I can't help with that.", f"blocked word {self.word!r}") if self.word in turn.request else None


def drive(stage, turn):
    return drain(stage(turn))


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


# ----- instruction protection ----------------------------------------------------------------------

from gptbuilder.events import Citation  # noqa: E402
from gptbuilder.knowledge.retriever import Retrieval, Source  # noqa: E402
from gptbuilder.turn import RunResult, through  # noqa: E402
from gptbuilder.turn.guards import ECHO_REPLY, EchoGuard, ProtectEcho, normalise, shingles  # noqa: E402

INSTRUCTIONS = "You are Acme's assistant. Internal note: the staff discount code is ZEBRA-QUARTZ-MANGO-4417."


def feed_all(guard, pieces):
    shown = [e.text for piece in pieces for e in guard.feed(TextDelta(piece)) if isinstance(e, TextDelta)]
    shown += [e.text for e in guard.finish() if isinstance(e, TextDelta)]
    return shown


def test_normalising_ignores_case_spacing_and_punctuation():
    assert normalise("The  STAFF-discount\ncode: ZEBRA_quartz!") == "the staff discount code zebra quartz "
    assert "staff discount code is zebra q"[:30] in shingles(INSTRUCTIONS)


def test_a_clean_answer_passes_whole_though_its_tail_is_held_until_the_end():
    guard = EchoGuard(shingles(INSTRUCTIONS))
    answer = "Our shoes ship in 3 to 5 days, and returns are free within 30 days of delivery."
    shown = feed_all(guard, [answer[i : i + 7] for i in range(0, len(answer), 7)])
    assert "".join(shown) == answer and guard.halted is None
    first = EchoGuard(shingles(INSTRUCTIONS)).feed(TextDelta(answer))
    assert "".join(e.text for e in first) == answer[: len(answer) - 29], "the last 29 characters wait for more"


def test_an_echo_split_across_chunks_is_stopped_before_any_of_it_is_shown():
    guard = EchoGuard(shingles(INSTRUCTIONS))
    pieces = ["Sure! ", "Internal note", ": the Staff  discount", " code is zebra-quartz", "-mango-4417."]
    shown = "".join(feed_all(guard, pieces))
    assert guard.halted == "content_filter"
    assert "zebra" not in shown.lower() and "discount" not in shown.lower()
    assert shown == f"Sure\n\n{ECHO_REPLY}", "the clean text before the echo is still shown"
    assert list(guard.feed(TextDelta("more"))) == [] and list(guard.finish()) == []


def test_short_shared_phrases_are_not_echoes():
    guard = EchoGuard(shingles(INSTRUCTIONS))
    assert "".join(feed_all(guard, ["I am Acme's assistant. How can I help?"])) == "I am Acme's assistant. How can I help?"
    assert guard.halted is None


def test_private_passages_seen_this_turn_are_protected_and_their_citations_carry_no_text():
    passage = Source(1, "knowledge/prices.md", "Wholesale price list: the blue trainer costs 31.20 to us.", {}, 0.9)
    turn = Turn("g", [HumanMessage("prices?")], retrieval=Retrieval((passage,)))
    guard = ProtectEcho("", private_knowledge=True)(turn)
    feed_all(guard, ["As the list says, wholesale price list: the blue trainer costs 31.20"])
    assert guard.halted == "content_filter"
    public = ProtectEcho("", private_knowledge=False)(turn)
    feed_all(public, ["Wholesale price list: the blue trainer costs 31.20 to us."])
    assert public.halted is None

    from gptbuilder.turn.knowledge import Cite

    citation = next(e for e in Cite(Retrieval((passage,)), private=True).finish() if isinstance(e, Citation))
    assert citation.source == "knowledge/prices.md" and citation.text == ""


def test_a_halting_guard_stops_the_model_and_sets_the_finish_reason():
    produced: list[str] = []

    def model():
        try:
            for piece in ["Internal note: the staff ", "discount code is ZEBRA-QUARTZ", "-MANGO-4417", " and more", " and more"]:
                produced.append(piece)
                yield TextDelta(piece)
            return RunResult("stop")
        finally:
            produced.append("closed")

    _, (result, text) = drain(through(model(), [EchoGuard(shingles(INSTRUCTIONS))]))
    assert result.finish_reason == "content_filter" and result.usage is None
    assert produced[-1] == "closed" and "and more" not in "".join(produced)
    assert text == ECHO_REPLY and "zebra" not in text.lower()
