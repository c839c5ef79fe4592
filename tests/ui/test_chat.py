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
