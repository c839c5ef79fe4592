"""Request schemas at the edge: text that is not valid Unicode is refused with where it is."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from gptbuilder.server.schemas import ChatCompletionRequest, CompletionRequest, lone_surrogate_at


def test_lone_surrogates_are_found_with_their_place():
    assert lone_surrogate_at({"a": ["ok", {"b": "x\ud800"}]}) == "a.1.b"
    assert lone_surrogate_at({"\udfff": "key"}) == "the body"
    assert lone_surrogate_at("\udc00") == "the body"
    assert lone_surrogate_at({"a": ["ok", "😀 é \U0010ffff", 3, None]}) is None


@pytest.mark.parametrize("body", [
    '{"model": "m", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
    '{"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "\\udfff"}]}]}',
    '{"model": "m\\ud800", "messages": [{"role": "user", "content": "hi"}]}',
])
def test_a_chat_request_with_a_lone_surrogate_is_invalid(body):
    with pytest.raises(ValidationError, match="lone UTF-16 surrogate"):
        ChatCompletionRequest.model_validate(json.loads(body))


def test_a_valid_surrogate_pair_is_one_character_and_fine():
    body = '{"model": "m", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
    request = ChatCompletionRequest.model_validate(json.loads(body))
    assert request.messages[0].text() == "😀"
    with pytest.raises(ValidationError, match="prompt holds a lone"):
        CompletionRequest.model_validate(json.loads('{"prompt": "\\ud83d"}'))
