"""`POST /v1/embeddings` through the official openai client, against a live server."""

from __future__ import annotations

import base64
import math
import struct

import httpx
import openai
import pytest

from gptbuilder.knowledge.embeddings import FakeEmbedder, get_embedder
from gptbuilder.server import ServerConfig
from gptbuilder.server.embeddings_api import MAX_INPUTS
from tests.server.conftest import live, make_app  # noqa: F401

KEY = "sk-embed-key"
NOTES = "name: Notes\ninstructions: x\nmodel: {provider: fake}\nknowledge: {embedding_model: fake}\n"


@pytest.fixture
def server(make_app, live, write_spec):
    write_spec("notes", NOTES)
    return live(make_app(ServerConfig(api_keys=(KEY,))))


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6) for x, y in zip(a, b, strict=True))


def test_floats_are_the_gpts_own_embedders_vectors(client):
    texts = ["refund policy", "shipping to Norway"]
    reply = client.embeddings.create(model="notes", input=texts, encoding_format="float")
    expected = FakeEmbedder().embed(texts)
    assert reply.object == "list" and reply.model == "notes"
    assert [d.index for d in reply.data] == [0, 1]
    assert all(_close(d.embedding, e) for d, e in zip(reply.data, expected, strict=True))
    assert reply.usage.prompt_tokens == 5 and reply.usage.total_tokens == 5  # the fake embedder reads words


def test_base64_is_little_endian_float32(client):
    expected = FakeEmbedder().embed(["refund policy"])[0]
    default = client.embeddings.create(model="notes", input="refund policy")  # the SDK asks for base64 and decodes it
    assert _close(default.data[0].embedding, expected)
    asked = client.embeddings.create(model="notes", input="refund policy", encoding_format="base64")
    packed = base64.b64decode(asked.data[0].embedding)  # asked for explicitly, the SDK hands over the text
    assert _close(list(struct.unpack(f"<{len(packed) // 4}f", packed)), expected)


def test_matching_dimensions_are_accepted(client):
    reply = client.embeddings.create(model="notes", input="hi", dimensions=256)
    assert len(reply.data[0].embedding) == 256


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "hi", "dimensions": 64}, "dimensions"),
        ({"input": ["x"] * (MAX_INPUTS + 1)}, "input"),
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": [1, 2, 3]}, "input"),
        ({"input": []}, "input"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": ["ok", None]}, "input[1]"),
    ],
)
def test_bad_requests_are_400_naming_the_field(client, body, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="notes", **body)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == param


def test_token_arrays_are_refused_with_a_hint(client):
    with pytest.raises(openai.BadRequestError, match="check_embedding_ctx_length"):
        client.embeddings.create(model="notes", input=[[101, 2023]])


def test_unknown_model_is_404_with_did_you_mean(client):
    with pytest.raises(openai.NotFoundError, match="notes"):
        client.embeddings.create(model="note", input="hi")


def test_keys_and_usage_as_for_chat(client, server):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).embeddings.create(model="notes", input="x")
    client.embeddings.create(model="notes", input=["one two", "three"])
    usage = httpx.get(f"{server.url}/v1/usage", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert usage["total"]["prompt_tokens"] == 3 and usage["data"][0]["model"] == "notes"


def test_rate_limits_apply(make_app, live, write_spec):
    write_spec("notes", NOTES)
    server = live(make_app(ServerConfig(api_keys=(KEY,), requests_per_minute_per_key=1)))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    client.embeddings.create(model="notes", input="x")
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="notes", input="x")


@pytest.mark.slow
def test_packaged_minilm_by_name(make_app, live):
    server = live(make_app(ServerConfig()))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
    texts = ["How do I return shoes?", "Wie lange dauert der Versand?"]
    reply = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # base64 on the wire
    expected = get_embedder(None).embed(texts)
    assert reply.model == "all-MiniLM-L6-v2" and len(reply.data[0].embedding) == 384
    assert all(_close(d.embedding, e) for d, e in zip(reply.data, expected, strict=True))
    tokenizer = get_embedder(None).model.tokenizer
    assert reply.usage.prompt_tokens == sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    with pytest.raises(openai.BadRequestError, match="at most 254"):
        client.embeddings.create(model="all-MiniLM-L6-v2", input="word " * 300)
    with pytest.raises(openai.BadRequestError, match="384"):
        client.embeddings.create(model="all-MiniLM-L6-v2", input="hi", dimensions=1536)
