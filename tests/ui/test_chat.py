"""The chat page, launched for real and driven through gradio_client."""

from __future__ import annotations

import pytest
from gradio_client import Client

from gptbuilder.store import Store
from gptbuilder.ui import build_ui

FAKE = "name: Parrot\ndescription: Repeats you.\ninstructions: Repeat.\nconversation_starters: [Say hi]\nmodel: {provider: fake}\n"
FAILING = "name: Flaky\ninstructions: x\nmodel: {provider: fake, options: {replies: ['one two three'], fail_after: 2}}\n"
REAL = "name: Real\ninstructions: You are a helpful assistant. Answer in one short sentence.\nmodel: {temperature: 0, max_tokens: 40}\n"


@pytest.fixture
def client(write_spec, gpts_dir):
    write_spec("parrot", FAKE)
    write_spec("flaky", FAILING)
    write_spec("real", REAL)
    demo = build_ui(Store(gpts_dir))
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_chat_streams_the_fake_answer(client):
    job = client.submit("hello there", "parrot", api_name="/chat")
    updates = list(job)
    assert updates[-1] == "You said: hello there"
    assert len(updates) >= 2, "the answer should arrive in pieces"


def test_an_unknown_gpt_fails_with_a_clear_message(client):
    with pytest.raises(Exception, match="unknown GPT 'nope'"):
        client.predict("hi", "nope", api_name="/chat")


def test_a_model_error_mid_stream_keeps_the_partial_answer(client):
    answer = client.predict("go", "flaky", api_name="/chat")
    assert answer.startswith("one two") and "The answer stopped" in answer


def test_the_real_embedded_model_answers_in_the_page(client):
    answer = client.predict("What is the capital of France?", "real", api_name="/chat")
    assert "Paris" in answer


def test_answers_from_knowledge_list_their_sources(write_spec, gpts_dir, tmp_path):
    (gpts_dir / "knowledge").mkdir()
    (gpts_dir / "knowledge" / "returns.md").write_text("# Returns\nShoes can be returned within 30 days.\n", encoding="utf-8")
    write_spec("acme", "name: Acme\ninstructions: x\nmodel: {provider: fake, options: {replies: ['30 days [1].']}}\n"
                       "knowledge: {files: [knowledge/*.md], embedding_model: fake}\n")
    demo = build_ui(Store(gpts_dir, data_dir=tmp_path / "data"))
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        answer = Client(demo.local_url, verbose=False).predict("returns?", "acme", api_name="/chat")
    finally:
        demo.close()
    assert answer.startswith("30 days [1].")
    assert "**Sources**\n1. `knowledge/returns.md` — Returns: # Returns Shoes can be returned within 30 days." in answer
