"""The chat view, launched for real and driven through gradio_client: streaming, starters, history, feedback."""

from __future__ import annotations

import re
import time

import pytest

from gptbuilder.db import Database
from gptbuilder.history import History
from gptbuilder.store import REFRESH_SECONDS
from tests.test_agent_tools import call, orders  # noqa: F401  (orders is a fixture)
from tests.ui.conftest import content_of, text_of

PARROT = (
    "name: Parrot\ndescription: Repeats you.\ninstructions: Repeat.\n"
    "conversation_starters: [Say hi, Tell me a joke]\nmodel: {provider: fake}\n"
)
FLAKY = "name: Flaky\ninstructions: x\nmodel: {provider: fake, options: {replies: ['one two three'], fail_after: 2}}\n"
TWO_REPLIES = "name: Twice\ninstructions: x\nmodel: {provider: fake, options: {replies: ['first answer', 'second answer']}}\n"
REAL = "name: Real\ninstructions: You are a helpful assistant. Answer in one short sentence.\nmodel: {temperature: 0, max_tokens: 40}\n"


@pytest.fixture
def store_client(write_spec, launch):
    write_spec("parrot", PARROT)
    write_spec("flaky", FLAKY)
    write_spec("twice", TWO_REPLIES)
    _, client = launch()
    return client


def chat(client, message, gpt_id):
    """Send a message; return every streamed chatbot state (raising the app's error, if any)."""
    job = client.submit(message, gpt_id, api_name="/chat")
    states = [update[0] for update in job]
    job.result()
    return states


def test_chat_streams_the_answer_and_saves_the_conversation(store_client, tmp_path):
    states = chat(store_client, "hello there", "parrot")
    assert len(states) >= 3, "the answer should arrive in pieces"
    partial = [text_of(s[-1]) for s in states if s and s[-1]["role"] == "assistant"]
    assert partial[0] == "You" and partial[-1] == "You said: hello there"
    assert [m["role"] for m in states[-1]] == ["user", "assistant"]
    assert text_of(states[-1][-1]) == "You said: hello there"
    [conversation] = store_client.predict("parrot", "", api_name="/conversations")
    assert conversation["title"] == "hello there"
    stored = store_client.predict(conversation["id"], api_name="/messages")
    assert [(m["role"], m["content"]) for m in stored] == [("user", "hello there"), ("assistant", "You said: hello there")]


def test_a_second_message_continues_the_same_conversation(store_client):
    chat(store_client, "one", "parrot")
    last = chat(store_client, "two", "parrot")[-1]
    assert [text_of(m) for m in last] == ["one", "You said: one", "two", "You said: two"]
    assert len(store_client.predict("parrot", "", api_name="/conversations")) == 1


def test_opening_a_gpt_shows_its_description_and_starters(store_client):
    header = store_client.predict("parrot", api_name="/open")[0]
    assert "Parrot" in header and "Repeats you." in header
    starters = store_client.predict("parrot", api_name="/gpt")["conversation_starters"]
    assert starters == ["Say hi", "Tell me a joke"]
    assert text_of(chat(store_client, starters[0], "parrot")[-1][-1]) == "You said: Say hi"


def test_conversations_can_be_resumed_renamed_and_deleted(store_client):
    chat(store_client, "first chat", "parrot")
    store_client.predict(api_name="/new_chat")
    chat(store_client, "second chat", "parrot")
    listed = store_client.predict("parrot", "", api_name="/conversations")
    assert [c["title"] for c in listed] == ["second chat", "first chat"]
    resumed = store_client.predict(listed[1]["id"], "parrot", api_name="/resume")
    assert [text_of(m) for m in resumed[0]] == ["first chat", "You said: first chat"]
    store_client.predict("Jokes", "parrot", api_name="/rename")  # the resumed conversation is the current one
    assert {c["title"] for c in store_client.predict("parrot", "", api_name="/conversations")} == {"Jokes", "second chat"}
    with pytest.raises(Exception, match="title cannot be empty"):
        store_client.predict("   ", "parrot", api_name="/rename")
    store_client.predict("parrot", api_name="/delete")
    assert [c["title"] for c in store_client.predict("parrot", "", api_name="/conversations")] == ["second chat"]
    with pytest.raises(Exception, match="no conversation"):
        store_client.predict(listed[1]["id"], api_name="/messages")


def test_feedback_with_a_comment_is_stored_and_counted(store_client, tmp_path):
    chat(store_client, "rate me", "parrot")
    [conversation] = store_client.predict("parrot", "", api_name="/conversations")
    answer = store_client.predict(conversation["id"], api_name="/messages")[-1]
    assert store_client.predict(answer["id"], -1, "too short", api_name="/feedback") == "ok"
    stats = History(Database.for_data_dir(tmp_path / "data")).stats()["parrot"]
    assert (stats.thumbs_up, stats.thumbs_down) == (0, 1)
    with pytest.raises(Exception, match=r"feedback is \+1"):
        store_client.predict(answer["id"], 5, "", api_name="/feedback")
    user_message = store_client.predict(conversation["id"], api_name="/messages")[0]
    with pytest.raises(Exception, match="no assistant message"):
        store_client.predict(user_message["id"], 1, "", api_name="/feedback")


def test_a_gpt_can_be_rated_and_the_card_shows_it(store_client):
    store_client.predict("parrot", 4, api_name="/rate")
    store_client.predict("parrot", 2, api_name="/rate")  # the same user again: the latest counts
    card = next(c for c in store_client.predict("", "all", api_name="/gpts") if c["id"] == "parrot")
    assert (card["rating"], card["ratings"]) == (2.0, 1)
    assert store_client.predict("parrot", api_name="/open")[1]["value"] == 2  # reopening shows your own rating


def test_regenerate_replaces_the_last_answer(store_client):
    assert text_of(chat(store_client, "hi", "twice")[-1][-1]) == "first answer"
    states = [u[0] for u in store_client.submit("twice", api_name="/regenerate")]
    assert [text_of(m) for m in states[-1]] == ["hi", "second answer"]
    [conversation] = store_client.predict("twice", "", api_name="/conversations")
    stored = store_client.predict(conversation["id"], api_name="/messages")
    assert [m["content"] for m in stored] == ["hi", "second answer"]


def test_a_model_error_mid_stream_keeps_the_partial_answer_and_saves_it(store_client):
    last = chat(store_client, "go", "flaky")[-1][-1]
    assert text_of(last).startswith("one two")
    assert "The answer stopped" in text_of(last) and "failed on purpose" in text_of(last)
    [conversation] = store_client.predict("flaky", "", api_name="/conversations")
    answer = store_client.predict(conversation["id"], api_name="/messages")[-1]
    assert answer["content"] == "one two" and "failed on purpose" in answer["extra"]["error"]


def test_a_gpt_whose_spec_just_broke_gives_a_clear_message_and_others_still_work(store_client, write_spec):
    chat(store_client, "before", "parrot")
    write_spec("parrot", "name: Parrot\ninstructions: x\nmodel: {provider: fake, temprature: 1}\n")
    time.sleep(REFRESH_SECONDS + 0.05)  # an edit made on disk shows within the store's refresh interval
    with pytest.raises(Exception, match=re.escape("parrot.yaml: model.temprature: unknown field 'temprature'")):
        chat(store_client, "after", "parrot")
    header = store_client.predict("parrot", api_name="/open")[0]
    assert "cannot be used right now" in header and "temprature" in header
    assert text_of(chat(store_client, "still fine?", "twice")[-1][-1]) == "first answer"
    assert [c["id"] for c in store_client.predict("", "all", api_name="/gpts")] == ["flaky", "twice"]


def test_an_unknown_gpt_and_an_empty_message_fail_with_clear_messages(store_client):
    with pytest.raises(Exception, match="unknown GPT 'nope'"):
        chat(store_client, "hi", "nope")
    with pytest.raises(Exception, match="the message is empty"):
        chat(store_client, "   ", "parrot")
    assert store_client.predict("parrot", "", api_name="/conversations") == []


def test_html_in_a_name_or_description_is_shown_as_text(write_spec, launch):
    write_spec("xss", "name: <img src=x onerror=alert(1)>\ndescription: <script>alert('d')</script>\n"
                      "instructions: x\nmodel: {provider: fake}\n")
    _, client = launch()
    header = client.predict("xss", api_name="/open")[0]
    assert "<script>" not in header and "<img" not in header
    assert "&lt;script&gt;alert(&#x27;d&#x27;)&lt;/script&gt;" in header and "&lt;img src=x onerror=alert(1)&gt;" in header


def test_answers_from_knowledge_list_numbered_sources(write_spec, gpts_dir, launch):
    (gpts_dir / "knowledge").mkdir()
    (gpts_dir / "knowledge" / "returns.md").write_text("# Returns\nShoes can be returned within 30 days.\n", encoding="utf-8")
    write_spec("acme", "name: Acme\ninstructions: x\nmodel: {provider: fake, options: {replies: ['30 days [1].']}}\n"
                       "knowledge: {files: [knowledge/*.md], embedding_model: fake}\n")
    _, client = launch()
    message = chat(client, "returns?", "acme")[-1][-1]
    answer = text_of(message)
    assert answer.startswith("30 days [1].")
    assert "Sources\n\nknowledge/returns.md — Returns: # Returns Shoes can be returned within 30 days." in answer
    assert "<ol>&#10;<li><code>knowledge/returns.md</code>" in content_of(message)  # numbered


@pytest.mark.slow
def test_the_real_embedded_model_answers_in_the_store(write_spec, launch):
    write_spec("real", REAL)
    _, client = launch()
    states = chat(client, "What is the capital of France?", "real")
    assert "Paris" in text_of(states[-1][-1]) and len(states) > 2


def _orders_gpt(write_spec, replies):
    import json

    write_spec("acme", "name: Acme\ninstructions: Use the tools.\nallow_private_network: true\n"
                       f"model: {{provider: fake, options: {{replies: {json.dumps(replies)}}}}}\n"
                       "tools:\n  - action: {openapi: actions/orders.openapi.yaml}\n")


def test_tool_steps_and_approvals_run_only_when_approved(write_spec, launch, orders):
    _orders_gpt(write_spec, [call("getOrder", order_id="A1001"), call("cancelOrder", order_id="A1002"), "Order A1002 is cancelled."])
    _, client = launch()
    job = client.submit("Cancel A1002", "acme", api_name="/chat")
    list(job)
    chatbot, approval_note = job.result()[:2]
    titles = [m["metadata"]["title"] for m in chatbot if m.get("metadata")]
    assert titles == ["🔧 getOrder", "⏸ cancelOrder needs your approval"]
    assert "Result" in text_of(chatbot[1]) and "A1001" in text_of(chatbot[1])
    assert "Approval needed" in approval_note and '`cancelOrder(order_id="A1002")`' in approval_note
    assert "/orders/A1002/cancel" not in orders.raw_paths
    approved = [u[0] for u in client.submit("acme", api_name="/approve")][-1]
    assert text_of(approved[-1]) == "Order A1002 is cancelled."
    assert orders.raw_paths.count("/orders/A1002/cancel") == 1
    assert any(m.get("metadata", {}) and m["metadata"]["title"] == "🔧 cancelOrder" for m in approved)
    with pytest.raises(Exception, match="nothing waiting for approval"):
        client.predict("acme", api_name="/approve")


def test_a_denied_call_never_runs(write_spec, launch, orders):
    _orders_gpt(write_spec, [call("cancelOrder", order_id="A1002"), "Fine, I left it alone."])
    _, client = launch()
    list(client.submit("Cancel A1002", "acme", api_name="/chat"))
    denied = [u[0] for u in client.submit("acme", api_name="/deny")][-1]
    assert text_of(denied[-1]) == "Fine, I left it alone."
    assert "(denied cancelOrder)" in [text_of(m) for m in denied]
    assert "/orders/A1002/cancel" not in orders.raw_paths


@pytest.mark.slow
def test_stop_keeps_the_partial_answer_in_history(write_spec, launch, tmp_path):
    import time

    write_spec("real", "name: Real\ninstructions: You are a storyteller.\nmodel: {temperature: 0, max_tokens: 400}\n")
    _, client = launch()
    job = client.submit("Tell me a very long story about a dragon.", "real", api_name="/chat")
    deadline = time.time() + 60
    while time.time() < deadline and not any(s[0] and s[0][-1]["role"] == "assistant" and text_of(s[0][-1]) for s in job.outputs()):
        time.sleep(0.05)
    job.cancel()  # what the Stop button does
    history = History(Database.for_data_dir(tmp_path / "data"))
    deadline = time.time() + 30
    answer = None
    while time.time() < deadline:
        [conversation] = history.conversations("real") or [None]
        answer = history.messages(conversation.id)[-1] if conversation else None
        if answer is not None and answer.extra.get("streaming") is False:
            break
        time.sleep(0.1)
    assert answer is not None and answer.extra["stopped"] is True, "the stopped answer was not saved as stopped"
    assert answer.content.strip() and answer.extra["finish_reason"] is None


def test_curated_answers_are_marked_in_the_chat(write_spec, launch):
    write_spec("acme", "name: Acme\ninstructions: x\nmodel: {provider: fake}\n"
                       "curated_answers:\n  - {question: 'What is your return window?', answer: 30 days from delivery.}\n")
    _, client = launch()
    message = chat(client, "What is your return window?", "acme")[-1][-1]
    assert text_of(message) == "✅ Curated answer\n30 days from delivery."
    assert "<em>Curated answer</em>" in content_of(message)
    assert text_of(chat(client, "Tell me a joke", "acme")[-1][-1]) == "You said: Tell me a joke"
