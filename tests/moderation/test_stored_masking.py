"""Personal data is masked in everything stored (store, widget, MCP, feedback, stored responses), whatever the
GPT's moderation says, while the turn itself still answers what the user wrote."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gptbuilder.db import Database
from gptbuilder.history import History, PartialAnswer
from gptbuilder.moderation.masking import mask_value
from gptbuilder.server import ServerConfig
from gptbuilder.server.responses_store import ResponseStore
from gptbuilder.store import Store
from gptbuilder.ui.conversation import ChatTurns
from tests.server.conftest import ECHO, live, make_app  # noqa: F401
from tests.server.test_mcp import session_with
from tests.server.test_widget import SITE, widget_spec

SECRET = "mail bob@example.com or pay with 4111 1111 1111 1111"
MASKED = "mail [email] or pay with [card]"


@pytest.fixture
def history(tmp_path):
    return History(Database.for_data_dir(tmp_path / "data"))


def test_values_are_masked_but_ids_and_data_urls_are_kept():
    value = {
        "id": "call_4111111111111111", "tool_call_id": "bob@example.com", "content": SECRET,
        "parts": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD4111111111111111"}}],
        "arguments": json.dumps({"card": 4111111111111111, "to": "bob@example.com"}), "count": 3,
    }
    masked = mask_value(value)
    assert masked["id"] == value["id"] and masked["tool_call_id"] == value["tool_call_id"]
    assert masked["content"] == MASKED and masked["parts"] == value["parts"] and masked["count"] == 3
    assert json.loads(masked["arguments"]) == {"card": "[card]", "to": "[email]"}  # still JSON


def test_every_write_of_the_history_is_masked(history):
    conversation = history.start("gpt", title="about bob@example.com")
    assert history.get(conversation.id).title == "about [email]"
    untitled = history.start("gpt")
    history.add(untitled.id, "user", SECRET, approvals={"call_1": True})
    assert history.get(untitled.id).title == MASKED  # named from the masked message
    answer = history.add(untitled.id, "assistant", "", streaming=True)
    PartialAnswer(history, answer.id, every=0).grew("so far: bob@example.com")
    assert history.messages(untitled.id)[-1].content == "so far: [email]"
    history.update(answer.id, f"Done. {SECRET}", steps=[{"id": "c1", "result": "IBAN DE89 3704 0044 0532 0130 00"}])
    user, stored = history.messages(untitled.id)
    assert user.content == MASKED and user.extra == {"approvals": {"call_1": True}}
    assert stored.content == f"Done. {MASKED}" and stored.extra["steps"] == [{"id": "c1", "result": "IBAN [iban]"}]
    history.feedback(answer.id, -1, "wrong, write to alice@example.org or +44 20 7946 0958")
    with history.db.session() as session:
        from gptbuilder.history import FeedbackRow

        [row] = session.query(FeedbackRow).all()
        assert row.comment == "wrong, write to [email] or [phone]"
    history.rename(untitled.id, "bob@example.com's order")
    assert history.get(untitled.id).title == "[email]'s order"


def test_a_store_turn_answers_what_was_written_and_stores_it_masked(write_spec, gpts_dir, tmp_path):
    write_spec("echo", ECHO)  # no moderation: config: the answer is not masked, only what is kept
    turns = ChatTurns(Store(gpts_dir, data_dir=tmp_path / "data"), History(Database.for_data_dir(tmp_path / "data")))
    snapshots = list(turns.send("echo", None, SECRET))
    assert snapshots[-1].messages[-1].content == f"You said: {SECRET}"  # the model read the message as written
    conversation = snapshots[-1].conversation_id
    stored = turns.history.messages(conversation)
    assert [m.content for m in stored] == [MASKED, f"You said: {MASKED}"]
    assert snapshots[-1].messages[0].content == MASKED  # the store shows what it keeps
    # A later turn reads the conversation from the database: the model sees [email] and [card] there.
    list(turns.regenerate("echo", conversation))
    assert turns.history.messages(conversation)[-1].content == f"You said: {MASKED}"


def test_a_widget_message_is_stored_masked(make_app, write_spec):
    write_spec("shop", widget_spec([]))
    client = TestClient(make_app(ServerConfig(api_keys=("sk-secret",))))
    token = client.post("/widget/shop/session", headers={"Origin": SITE}).json()["token"]
    response = client.post("/widget/shop/messages", json={"message": SECRET}, headers={"Authorization": f"Bearer {token}"})
    done = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")][-1]
    assert "bob@example.com" in done["html"]  # the visitor's answer is the GPT's own (its moderation decides)
    history = client.app.state.gptbuilder.history
    [conversation] = history.conversations("shop")
    assert [m.content for m in history.messages(conversation.id)] == [MASKED, f"You said: {MASKED}"]


def test_an_mcp_question_is_stored_masked(make_app, live, write_spec, tmp_path):
    write_spec("echo", ECHO)
    served = live(make_app(ServerConfig(api_keys=("k-1",))))
    result = session_with(f"{served.url}/mcp", "k-1", lambda s: s.call_tool("ask_echo", {"message": SECRET}))
    assert result.structured_content["answer"] == f"You said: {SECRET}"
    history = History(Database.for_data_dir(tmp_path / "data"))
    stored = history.messages(result.structured_content["conversation"])
    assert [m.content for m in stored] == [MASKED, f"You said: {MASKED}"]


def test_stored_responses_are_masked(tmp_path):
    responses = ResponseStore(Database.for_data_dir(tmp_path / "data"))
    body: dict[str, Any] = {"id": "resp_1", "model": "echo", "previous_response_id": None,
                            "output": [{"type": "message", "content": [{"type": "output_text", "text": SECRET}]}]}
    responses.save("key:1", body, [{"role": "user", "content": SECRET}, {"role": "assistant", "content": "ok"}])
    got = responses.get("key:1", "resp_1")
    assert got is not None and got["id"] == "resp_1" and got["output"][0]["content"][0]["text"] == MASKED
    assert responses.conversation("key:1", "resp_1", max_turns=2) == [{"role": "user", "content": MASKED},
                                                                       {"role": "assistant", "content": "ok"}]
