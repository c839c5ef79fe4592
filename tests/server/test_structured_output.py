"""Structured output over the API: response_format (chat, legacy completions) and text.format (Responses), with real clients."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from gptbuilder.models.fake import FakeChatModel
from gptbuilder.server import ServerConfig

CITY_JSON = '{"city": "Paris", "country": "France"}'
ASK = [{"role": "user", "content": "Which city is the capital of France? Answer in JSON."}]


class City(BaseModel):
    city: str
    country: str


class Stop(BaseModel):
    city: str
    nights: int


class Trip(BaseModel):
    title: str
    stops: list[Stop]


CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}
CITY_FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True}}


def _deep(levels: int) -> dict:
    schema: dict = {"type": "integer"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def _named(schema: object) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "bad", "schema": schema}}


BAD_FORMATS = {
    "bogus type": ({"type": "bogus"}, "response_format.type"),
    "json_schema without its schema": ({"type": "json_schema", "json_schema": {"name": "x"}}, "json_schema.schema: Field required"),
    "json_schema without json_schema": ({"type": "json_schema"}, "needs 'json_schema'"),
    "not JSON Schema": (_named({"type": "bogus"}), "not a valid JSON Schema"),
    "huge schema": (_named({"type": "object", "properties": {f"p{i}": {"description": "x" * 100} for i in range(1000)}}), "too large"),
    "deep schema": (_named(_deep(40)), "too deep"),
    "remote $ref": (_named({"properties": {"a": {"$ref": "http://169.254.169.254/x"}}}), "only local references"),
    "not an object": ("json", "response_format"),
}


@pytest.fixture
def fake() -> FakeChatModel:
    return FakeChatModel(replies=[CITY_JSON])


@pytest.fixture
def url(make_app, live, write_spec, fake) -> str:
    write_spec("city", "name: City\ninstructions: Answer.\nmodel: {provider: fake}\n")
    return live(make_app(ServerConfig(), model_factory=lambda _config, base_dir=None: fake)).url


@pytest.fixture
def client(url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)


def test_the_format_reaches_the_model_from_every_endpoint(client, fake):
    reply = client.chat.completions.create(model="city", messages=ASK, response_format=CITY_FORMAT)
    assert json.loads(reply.choices[0].message.content) == {"city": "Paris", "country": "France"}
    assert fake.calls[-1]["response_format"] == CITY_FORMAT
    client.chat.completions.create(model="city", messages=ASK, response_format={"type": "json_object"})
    assert fake.calls[-1]["response_format"] == {"type": "json_object"}
    client.chat.completions.create(model="city", messages=ASK, response_format={"type": "text"})
    assert "response_format" not in fake.calls[-1]
    legacy = client.completions.create(model="city", prompt="Paris?", extra_body={"response_format": {"type": "json_object"}})
    assert legacy.choices[0].text == CITY_JSON and fake.calls[-1]["response_format"] == {"type": "json_object"}
    response = client.responses.create(
        model="city", input="Paris?", text={"format": {"type": "json_schema", "name": "city", "schema": CITY_SCHEMA, "strict": True}}
    )
    assert fake.calls[-1]["response_format"] == CITY_FORMAT
    assert response.text.format.type == "json_schema" and response.text.format.name == "city"
    assert json.loads(response.output_text)["city"] == "Paris"


@pytest.mark.parametrize(("response_format", "message"), list(BAD_FORMATS.values()), ids=list(BAD_FORMATS))
def test_bad_formats_are_400_naming_response_format(client, url, fake, response_format, message):
    calls = len(fake.calls)
    with pytest.raises(openai.BadRequestError) as chat:
        client.chat.completions.create(model="city", messages=ASK, response_format=response_format)
    assert chat.value.body["param"] == "response_format" and message in chat.value.message
    legacy = httpx.post(f"{url}/v1/completions", json={"model": "city", "prompt": "x", "response_format": response_format})
    assert legacy.status_code == 400 and legacy.json()["error"]["param"] == "response_format"
    assert len(fake.calls) == calls, "nothing reached the model"


@pytest.mark.parametrize(
    ("format_", "message"),
    [
        ({"type": "bogus"}, "text.format.type"),
        ({"type": "json_schema", "name": "x"}, "text.format.schema: Field required"),
        ({"type": "json_schema", "name": "x", "schema": {"type": "bogus"}}, "not a valid JSON Schema"),
        ({"type": "json_schema", "name": "x", "schema": _deep(40)}, "too deep"),
    ],
)
def test_bad_responses_formats_are_400_naming_text_format(client, format_, message):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="city", input="x", text={"format": format_})
    assert caught.value.body["param"] == "text.format" and message in caught.value.message


def test_sdk_parse_and_langchain_structured_output(client, url):
    parsed = client.chat.completions.parse(model="city", messages=ASK, response_format=City).choices[0].message.parsed
    assert parsed == City(city="Paris", country="France")
    assert client.responses.parse(model="city", input="Paris?", text_format=City).output_parsed == parsed
    with client.chat.completions.stream(model="city", messages=ASK, response_format=City) as stream:
        assert stream.get_final_completion().choices[0].message.parsed == parsed

    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="city", base_url=f"{url}/v1", api_key="x", max_retries=0)
    assert llm.with_structured_output(City).invoke("Paris?") == parsed  # the default method (json_schema)
    assert llm.with_structured_output(CITY_SCHEMA | {"title": "City"}).invoke("Paris?") == parsed.model_dump()


def test_structured_answers_are_never_rewritten(make_app, live, write_spec, gpts_dir):
    """Sources inform a JSON answer and come as the citations field; no footnotes, no marker clean-up, no faithfulness fixes."""
    (gpts_dir / "kb").mkdir()
    (gpts_dir / "kb" / "returns.md").write_text("# Returns\nShoes can be returned within 30 days.\n", encoding="utf-8")
    answer = '{"days": 30, "sources": [3], "note": "Refunds take 90 days."}'  # [3] names no source; 90 days is unsupported
    write_spec("acme", f"name: Acme\ninstructions: x\nmodel: {{provider: fake, options: {{replies: [{json.dumps(answer)}]}}}}\n"
                       "knowledge: {files: [kb/*.md], embedding_model: fake, answer_mode: verified}\n")
    url = live(make_app(ServerConfig(citations="inline"))).url
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    message = client.chat.completions.create(model="acme", messages=[{"role": "user", "content": "returns?"}],
                                             response_format={"type": "json_object"}).choices[0].message
    assert message.content == answer
    assert [c["number"] for c in message.model_extra["citations"]] == [1]
    prose = client.chat.completions.create(model="acme", messages=[{"role": "user", "content": "returns?"}]).choices[0].message
    assert prose.content != answer, "the same answer as prose is checked and gets footnotes"


# --- on the embedded model ------------------------------------------------------------------------------------


@pytest.fixture
def smol(make_app, live, write_spec) -> tuple[str, openai.OpenAI]:
    write_spec("smol", "name: Smol\ninstructions: You are a helpful assistant.\nmodel: {max_tokens: 200}\n")
    url = live(make_app(ServerConfig())).url
    return url, openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


@pytest.mark.slow
def test_real_clients_get_parsed_answers_from_the_embedded_model(smol):
    url, client = smol
    for model in (City, Trip):
        reply = client.chat.completions.parse(model="smol", messages=ASK, response_format=model, temperature=0)
        assert isinstance(reply.choices[0].message.parsed, model), reply.choices[0].message.content
    assert isinstance(client.responses.parse(model="smol", input=ASK[0]["content"], text_format=City).output_parsed, City)
    raw = client.chat.completions.create(model="smol", messages=ASK, response_format=CITY_FORMAT, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw if chunk.choices)
    jsonschema.validate(json.loads(text), CITY_SCHEMA)

    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="smol", base_url=f"{url}/v1", api_key="unused", max_retries=0, temperature=0)
    assert isinstance(llm.with_structured_output(City).invoke(ASK[0]["content"]), City)


@pytest.mark.slow
def test_the_embedded_model_refuses_what_it_cannot_compile_with_a_400(smol):
    """llama.cpp's parser refuses large repetitions by a NULL the sampler crashed on: now a 400, and the server lives on."""
    _url, client = smol
    long_text = {"type": "object", "properties": {"text": {"type": "string", "maxLength": 5000}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="smol", messages=ASK, response_format=_named(long_text))
    assert caught.value.body["param"] == "response_format" and "maxLength 5000 is too large" in caught.value.message
    with pytest.raises(openai.BadRequestError) as responses:
        client.responses.create(model="smol", input="x", text={"format": {"type": "json_schema", "name": "t", "schema": long_text}})
    assert responses.value.body["param"] == "text.format"
    tool = {"type": "function", "function": {"name": "note", "parameters": long_text}}
    with pytest.raises(openai.BadRequestError):  # a caller's tool schema goes through the same grammar compiler
        client.chat.completions.create(model="smol", messages=ASK, tools=[tool], tool_choice="required")
    assert client.chat.completions.create(model="smol", messages=ASK, max_tokens=5).choices[0].message.content
