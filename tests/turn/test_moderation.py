"""Moderation's stages on their own (the input stage, the streaming output guard) and in an agent's turn."""

from __future__ import annotations

import re

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from gptbuilder.agent import compile_agent
from gptbuilder.events import Done, Moderated, TextDelta, Transcript
from gptbuilder.loader import load_spec
from gptbuilder.moderation import Moderation
from gptbuilder.spec import ModerationConfig
from gptbuilder.turn import RunResult, Turn, through
from gptbuilder.turn.moderation import ModerateInput, ModerateOutput, ModerationGuard
from tests.turn.helpers import drain

REFUSAL = "I won't go there."
BLOCK = Moderation.from_config(ModerationConfig(blocklist=["kill yourself", "idiot"], refusal=REFUSAL))
MASK = Moderation.from_config(ModerationConfig(pii="mask"))
LONG = "This answer is long enough to stream for a while before anything needs to be checked at all. "


def pieces(text: str, size: int = 3) -> list[str]:
    return re.findall(rf".{{1,{size}}}", text, re.S)


def feed(guard: ModerationGuard, parts: list[str]) -> tuple[list[str], list[Moderated], str]:
    """What came out after each part, the moderation events, and the whole text shown (finish included)."""
    after_each, marks = [], []
    for part in parts:
        events = list(guard.feed(TextDelta(part)))
        marks += [e for e in events if isinstance(e, Moderated)]
        after_each.append("".join(e.text for e in events if isinstance(e, TextDelta)))
    tail = list(guard.finish())
    marks += [e for e in tail if isinstance(e, Moderated)]
    return after_each, marks, "".join(after_each) + "".join(e.text for e in tail if isinstance(e, TextDelta))


def test_a_flagged_message_is_refused_before_anything_answers_it():
    turn = Turn("bot", [HumanMessage("you are an IDIOT")])
    events, done = drain(ModerateInput(BLOCK)(turn))
    assert events == [Moderated("input", "blocklist", "blocklist", "blocked"), TextDelta(REFUSAL)]
    assert isinstance(done, Done) and done.finish_reason == "content_filter" and done.text == REFUSAL


def test_only_the_latest_message_is_judged_and_a_clean_one_goes_on():
    turn = Turn("bot", [HumanMessage("idiot"), AIMessage("..."), HumanMessage("sorry, a real question")])
    assert drain(ModerateInput(BLOCK)(turn)) == ([], None)


def test_users_personal_data_is_masked_before_the_model_sees_it():
    turn = Turn("bot", [HumanMessage("I am bob@example.com"), AIMessage("ok"),
                        HumanMessage([{"type": "text", "text": "card 4111 1111 1111 1111"}])])
    events, done = drain(ModerateInput(MASK)(turn))
    assert done is None
    assert [(e.category, e.action) for e in events] == [("email", "masked"), ("card", "masked")]
    assert turn.history[0].content == "I am [email]" and turn.history[2].content == [{"type": "text", "text": "card [card]"}]


def test_a_clean_answer_streams_with_only_the_window_held_back():
    guard = ModerationGuard(BLOCK)
    after_each, marks, shown = feed(guard, pieces(LONG * 2))
    assert shown == LONG * 2 and marks == [] and guard.halted is None
    assert sum(map(len, after_each)) >= len(LONG * 2) - BLOCK.holdback  # all but the window came out while streaming
    assert BLOCK.holdback == len("kill yourself") + 1


def test_a_blocked_answer_stops_mid_stream_and_never_shows_the_phrase():
    guard = ModerationGuard(BLOCK)
    _, marks, shown = feed(guard, pieces(LONG + "Honestly, just kill\n yourself. And more after it."))
    assert guard.halted == "content_filter"
    assert marks == [Moderated("output", "blocklist", "blocklist", "blocked")]
    assert "kill" not in shown and "more after" not in shown
    assert shown.startswith(LONG[:40]) and shown.endswith("\n\n" + REFUSAL)


def test_a_word_cut_by_a_chunk_is_judged_whole():
    guard = ModerationGuard(BLOCK)
    _, marks, shown = feed(guard, [LONG, "idiot", "ic pun, idio", "syncrasy"])
    assert marks == [] and shown == LONG + "idiotic pun, idiosyncrasy"


def test_personal_data_split_across_chunks_is_masked_in_the_window():
    guard = ModerationGuard(MASK)
    _, marks, shown = feed(guard, pieces(LONG + "Write to bob.smith@exam" + "ple.com or call +44 20 7946 0958 today. " + LONG, 5))
    assert shown == LONG + "Write to [email] or call [phone] today. " + LONG
    assert [(m.side, m.category, m.action) for m in marks] == [("output", "email", "masked"), ("output", "phone", "masked")]


def test_a_block_stops_the_model():
    produced: list[str] = []

    def model():
        try:
            for piece in ["Fine. ", "You idiot", " and ", "more"]:
                produced.append(piece)
                yield TextDelta(piece)
            return RunResult("stop")
        finally:
            produced.append("closed")

    events, (result, text) = drain(through(model(), [ModerateOutput(BLOCK)(Turn("bot", [HumanMessage("hi")]))]))
    assert result.finish_reason == "content_filter" and produced[-1] == "closed" and "more" not in produced
    assert text.endswith(REFUSAL) and "idiot" not in text and any(isinstance(e, Moderated) for e in events)


SPEC = """
name: Bot
instructions: Be brief.
model: {{provider: fake, options: {{replies: {replies}}}}}
moderation: {{blocklist: [idiot], pii: mask, refusal: "I won't go there."}}
"""


@pytest.fixture
def agent(write_spec):
    def make(replies: list[str] | None = None):
        text = SPEC.format(replies=replies or [])
        return compile_agent(load_spec(write_spec("bot", text)))

    return make


def test_an_agent_refuses_a_flagged_message_without_calling_the_model(agent):
    bot = agent()
    transcript = Transcript.from_events(bot.stream("you idiot"))
    assert transcript.text == REFUSAL and transcript.finish_reason == "content_filter"
    assert transcript.blocked_by == Moderated("input", "blocklist", "blocklist", "blocked")
    assert bot.model.calls == []


def test_an_agent_masks_what_the_model_sees_and_stops_a_flagged_answer(agent):
    echo = Transcript.from_events(agent().stream("I am bob@example.com"))
    assert echo.text == "You said: I am [email]" and echo.blocked_by is None
    assert [(m.side, m.action) for m in echo.moderations] == [("input", "masked")]
    rude = Transcript.from_events(agent(["Well, you are an idiot and that is that."]).stream("hello"))
    assert rude.finish_reason == "content_filter" and "idiot" not in rude.text and rude.text.endswith(REFUSAL)
    assert rude.done.text == rude.text
