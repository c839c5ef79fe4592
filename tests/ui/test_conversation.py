"""Chat turns without the UI: persistence on stop and on errors, and the history the model is given."""

from __future__ import annotations

import pytest

from gptbuilder.db import Database
from gptbuilder.errors import InputError, SpecError
from gptbuilder.history import History, Message
from gptbuilder.store import Store
from gptbuilder.ui.conversation import ChatTurns, model_messages

SLOW = "name: Slow\ninstructions: x\nmodel: {provider: fake, options: {replies: ['a b c d e f g h']}}\n"


@pytest.fixture
def turns(write_spec, gpts_dir, tmp_path):
    write_spec("slow", SLOW)
    return ChatTurns(Store(gpts_dir, data_dir=tmp_path / "data"), History(Database.for_data_dir(tmp_path / "data")))


def test_stopping_an_answer_keeps_what_was_streamed(turns):
    stream = turns.send("slow", None, "go")
    first = next(stream)
    next(stream)
    stream.close()  # what the Stop button does to the running generator
    stored = turns.history.messages(first.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[-1].content == "a b" and stored[-1].extra["stopped"] is True


def test_a_streaming_answer_is_written_as_it_grows_so_a_crash_keeps_it(turns, monkeypatch):
    monkeypatch.setattr("gptbuilder.history.PARTIAL_SAVE_SECONDS", 0.0)
    stream = turns.send("slow", None, "go")
    first = next(stream)
    shown = next(stream).messages[-1].content
    # The generator is suspended mid-answer, as a killed process would leave it: what is in the database?
    stored = turns.history.messages(first.conversation_id)[-1]
    assert stored.content == shown and shown in ("a", "a b") and stored.extra["streaming"] is True
    rest = list(stream)
    stored = turns.history.messages(first.conversation_id)[-1]
    assert stored.content == rest[-1].messages[-1].content == "a b c d e f g h" and stored.extra["streaming"] is False


def test_a_finished_answer_is_stored_with_its_finish_reason(turns):
    snapshots = list(turns.send("slow", None, "go"))
    assert snapshots[-1].done and snapshots[-1].messages[-1].content == "a b c d e f g h"
    stored = turns.history.messages(snapshots[-1].conversation_id)[-1]
    assert stored.extra["finish_reason"] == "stop" and stored.extra["stopped"] is False and stored.extra["error"] is None


def test_nothing_is_stored_for_an_empty_message_or_a_broken_gpt(turns, write_spec):
    with pytest.raises(InputError):
        list(turns.send("slow", None, "  "))
    write_spec("slow", "name: Slow\n")
    with pytest.raises(SpecError):
        list(turns.send("slow", None, "hi"))
    assert turns.history.conversations("slow") == []


def test_a_conversation_of_another_gpt_is_not_continued(turns, write_spec):
    write_spec("other", SLOW)
    first = list(turns.send("slow", None, "go"))[-1].conversation_id
    second = list(turns.send("other", first, "go"))[-1].conversation_id
    assert first != second and turns.history.get(second).gpt_id == "other"


def test_paused_calls_and_their_results_go_back_to_the_model_in_order():
    call = {"name": "cancelOrder", "args": {"order_id": "A1"}, "id": "c1", "type": "tool_call"}
    stored = [
        Message(1, "user", "cancel A1"),
        Message(2, "assistant", "needs approval", {"pending_calls": [call]}),
        Message(3, "user", "(approved cancelOrder)", {"tool_results": [
            {"type": "tool_result", "id": "c1", "name": "cancelOrder", "content": "done", "error": False}]}),
        Message(4, "assistant", "", {}),  # an answer that failed before any text: left out
    ]
    converted = model_messages(stored)
    assert [type(m).__name__ for m in converted] == ["HumanMessage", "AIMessage", "ToolMessage", "HumanMessage"]
    assert converted[1].tool_calls[0]["id"] == "c1" and converted[2].tool_call_id == "c1"


class _CuratedAgent:
    def stream(self, messages, **options):
        from gptbuilder.events import Curated, Done, TextDelta

        yield Curated("What is your return window?", 0.93)
        yield TextDelta("30 days from delivery.")
        yield Done("30 days from delivery.")


class _OneAgentStore:
    def agent(self, gpt_id):
        return _CuratedAgent()


def test_curated_answers_are_stored_and_marked(tmp_path):
    from gptbuilder.ui.render import chat_messages

    turns = ChatTurns(_OneAgentStore(), History(Database.for_data_dir(tmp_path / "data")))
    last = list(turns.send("acme", None, "return window?"))[-1]
    stored = turns.history.messages(last.conversation_id)[-1]
    assert stored.extra["curated"]["question"] == "What is your return window?"
    shown, _ = chat_messages([stored])
    assert shown[-1]["content"] == "<p>✅ <em>Curated answer</em></p>&#10;<p>30 days from delivery.</p>"
