"""Structured output in the backends: schema checks, llama.cpp's bounded grammars, and answers held to a schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from gptbuilder.errors import InputError
from gptbuilder.models.fake import FakeChatModel
from gptbuilder.models.gbnf import MAX_OPTIONAL, MAX_REPEAT, check_bounds, pattern_size, schema_to_gbnf
from gptbuilder.models.structured import ANY_OBJECT, GrammarCache, answer_schema, check_schema
from gptbuilder.models.tool_calling import parse_reply, plan_turn, reply_schema
from gptbuilder.spec import ModelConfig
from gptbuilder.turn import Options
from tests.models.test_transformers import smollm2_hf_dir  # noqa: F401 - the embedded model as a transformers folder

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}
# What pydantic writes for a model with a nested one: definitions under $defs, referenced from the root.
TRIP = {
    "$defs": {"Stop": {"type": "object", "properties": {"city": {"type": "string"}, "nights": {"type": "integer"}},
                       "required": ["city", "nights"], "additionalProperties": False}},
    "type": "object",
    "properties": {"title": {"type": "string"}, "stops": {"type": "array", "items": {"$ref": "#/$defs/Stop"}, "maxItems": 3}},
    "required": ["title", "stops"],
    "additionalProperties": False,
}


def _json_schema(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


def _deep(levels: int) -> dict:
    schema: dict = {"type": "integer"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def test_each_format_names_the_schema_an_answer_follows():
    assert answer_schema(None) is None and answer_schema({"type": "text"}) is None
    assert answer_schema({"type": "json_object"}) == ANY_OBJECT
    assert answer_schema(_json_schema(CITY)) == CITY
    with pytest.raises(InputError, match="bogus"):
        answer_schema({"type": "bogus"})
    with pytest.raises(InputError, match=r"json_schema\.schema"):
        answer_schema({"type": "json_schema", "json_schema": {"name": "x"}})


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "bogus"}, "not a valid JSON Schema: type"),
        ({"type": "object", "properties": {"a": {"type": "string", "minLength": -1}}}, "properties.a.minLength"),
        ({"type": "string", "pattern": "(("}, "is not a 'regex'"),
        ({"type": "object", "properties": {f"p{i}": {"description": "x" * 100} for i in range(1000)}}, "too large to compile"),
        (_deep(20), "too deep to compile"),
        ({"properties": {"a": {"$ref": "https://example.com/schema.json"}}}, "only local references"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_schemas_that_cannot_be_used_are_named(schema, message):
    with pytest.raises(InputError, match=message):
        check_schema(schema)


def test_real_schemas_pass():
    for schema in (CITY, TRIP, ANY_OBJECT, _deep(10)):
        check_schema(schema)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "maxLength": MAX_REPEAT + 1}, "maxLength 1001 is too large"),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 10**9}, "minItems"),
        ({"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(MAX_OPTIONAL + 1)}}, "optional properties"),
        ({"type": "string", "pattern": "^((a{1000}){1000}){1000}$"}, "spells out too much"),
    ],
)
def test_what_llama_cpp_could_not_compile_is_refused_before_converting(schema, message):
    with pytest.raises(InputError, match=message):
        check_bounds(schema)


def test_pattern_sizes_count_repetitions_written_out():
    assert pattern_size(r"^[A-Z]{2}\d{4}$") == 6
    assert pattern_size("^(ab){3}$") == 6
    assert pattern_size("^((a{1000}){1000}){1000}$") > 10**6
    assert pattern_size("((") == 0  # not a regex: left to the converter


def test_grammars_keep_control_characters_out_of_strings():
    """llama-cpp-python's converter lets a raw line break into a string: JSON forbids it and pydantic's parser refuses it."""
    grammar = schema_to_gbnf(CITY)
    [char] = [line for line in grammar.splitlines() if line.startswith("char ::=")]
    assert char.startswith(r'char ::= [^"\\\x7F\x00-\x1F] |')


def test_a_reply_may_answer_in_the_schema_with_its_definitions_at_the_root():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]
    schema = reply_schema(tools, answer=TRIP)
    answer = schema["oneOf"][0]["properties"]["content"]
    assert answer["properties"]["stops"]["items"] == {"$ref": "#/$defs/Stop"} and "$defs" not in answer
    assert schema["$defs"] == TRIP["$defs"]
    reply = {"type": "answer", "content": {"title": "Rome", "stops": [{"city": "Rome", "nights": 2}]}}
    jsonschema.validate(reply, schema)
    assert json.loads(parse_reply(json.dumps(reply)).text) == reply["content"]
    turn = plan_turn(tools, [HumanMessage("hi")], "auto", answer=TRIP)
    assert turn.kind == "reply" and turn.schema == schema
    assert plan_turn(tools, [HumanMessage("hi")], "none", answer=TRIP).kind == "answer"


def test_grammar_caches_keep_the_most_recent_and_not_failures():
    cache: GrammarCache[int] = GrammarCache(size=2)
    assert [cache.get(key, lambda key=key: len(key)) for key in ("a", "bb", "ccc")] == [1, 2, 3]
    assert "a" not in cache and "ccc" in cache and len(cache) == 2

    def fail() -> int:
        raise InputError("no")

    with pytest.raises(InputError):
        cache.get("d", fail)
    assert "d" not in cache


def test_the_turn_options_pass_the_format_to_the_model():
    assert "response_format" not in Options(response_format={"type": "text"}).model_kwargs()
    assert Options(response_format=_json_schema(CITY)).model_kwargs()["response_format"] == _json_schema(CITY)
    assert Options(response_format={"type": "json_object"}).structured and not Options().structured
    fake = FakeChatModel(replies=['{"city": "Paris", "country": "France"}'])
    fake.invoke("hi", **Options(response_format={"type": "json_object"}).model_kwargs())
    assert fake.calls[-1]["response_format"] == {"type": "json_object"}


def test_the_openai_provider_sends_the_format_unchanged_in_the_body():
    from gptbuilder.models.openai import ChatOpenAICompatible

    model = ChatOpenAICompatible(model="m", api_key="k", base_url="http://127.0.0.1:9/v1", extra_body={"top_k": 5})
    kwargs = model._rename({"response_format": _json_schema(CITY), "max_tokens": 3})
    assert kwargs == {"max_completion_tokens": 3, "extra_body": {"top_k": 5, "response_format": _json_schema(CITY)}}
    copied = model.model_copy(update={"response_format": {"type": "json_object"}})  # as the tool loop passes it
    assert copied._rename({})["extra_body"]["response_format"] == {"type": "json_object"}


# --- on the real embedded model -----------------------------------------------------------------------------

QUESTIONS = ["What is the capital of France? Answer in JSON.", "Tell me about Tokyo in JSON.", "Describe Berlin as JSON."]


@pytest.fixture(scope="module")
def llama():
    from gptbuilder.models.llama_cpp import provider

    return provider.create(ModelConfig(temperature=0, max_tokens=120), base_dir=Path("."))


def _answer(model, prompt: str, response_format: dict, **options) -> tuple[str, str]:
    messages = [SystemMessage("You are a helpful assistant."), HumanMessage(prompt)]
    chunks = list(model.stream(messages, response_format=response_format, **options))
    finish = next(c.response_metadata["finish_reason"] for c in reversed(chunks) if c.response_metadata.get("finish_reason"))
    return "".join(c.text for c in chunks), finish


@pytest.mark.slow
@pytest.mark.parametrize("schema", [CITY, TRIP], ids=["flat", "nested"])
def test_llama_cpp_answers_parse_and_follow_the_schema(llama, schema):
    for question in QUESTIONS:
        text, finish = _answer(llama, question, _json_schema(schema), max_tokens=200)
        assert finish == "stop", text
        jsonschema.validate(json.loads(text), schema)  # strict JSON: no raw control characters in strings


@pytest.mark.slow
def test_llama_cpp_json_object_is_any_object(llama):
    for question in QUESTIONS[:2]:  # on the third, free JSON lets the 135M model nest until max_tokens: "length"
        text, finish = _answer(llama, question, {"type": "json_object"})
        assert finish == "stop" and isinstance(json.loads(text), dict), text


@pytest.mark.slow
def test_llama_cpp_cut_short_is_length(llama):
    text, finish = _answer(llama, QUESTIONS[0], _json_schema(CITY), max_tokens=4)
    assert finish == "length"
    with pytest.raises(ValueError):
        json.loads(text)


@pytest.mark.slow
def test_schemas_llama_cpp_cannot_parse_are_input_errors_not_crashes(llama, monkeypatch):
    """A grammar llama.cpp refuses used to reach its sampler as NULL: a segmentation fault, the server gone."""
    too_long = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 1500}}}
    with pytest.raises(InputError, match="maxLength 1500 is too large"):
        llama.check_json_schema(too_long)
    monkeypatch.setattr("gptbuilder.models.gbnf.MAX_REPEAT", 5000)  # past the bound, llama.cpp's parser refuses it itself
    with pytest.raises(InputError, match=r"llama\.cpp refused the grammar"):
        llama.check_json_schema(too_long)
    monkeypatch.undo()
    with pytest.raises(InputError, match="cannot be compiled"):
        llama.check_json_schema({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}})
    # A caller's tool with such parameters is refused the same way, before anything is sampled.
    tool = {"type": "function", "function": {"name": "note", "parameters": too_long}}
    with pytest.raises(InputError):
        llama.bind_tools([tool], tool_choice="required").invoke("Take a note.")
    assert _answer(llama, QUESTIONS[0], _json_schema(CITY))[1] == "stop", "the model still answers"


@pytest.mark.slow
def test_llama_cpp_compiles_a_schema_once(llama):
    llama.check_json_schema(CITY)
    cached = len(llama.runtime.grammars)
    llama.check_json_schema(json.loads(json.dumps(CITY)))
    assert len(llama.runtime.grammars) == cached


@pytest.mark.slow
def test_the_tool_loop_constrains_only_the_answer(tmp_path):
    """A GPT with its own tools: the calculator runs as usual, then the answer is the JSON."""
    from gptbuilder.agent import compile_agent
    from gptbuilder.events import Done, ToolResult
    from gptbuilder.loader import load_spec

    spec = tmp_path / "calc.yaml"
    spec.write_text("name: Calc\ninstructions: You are a helpful assistant. Use the tools.\ntools: [calculator]\n", encoding="utf-8")
    agent = compile_agent(load_spec(spec), data_dir=tmp_path / "data")
    schema = {"type": "object", "properties": {"result": {"type": "number"}}, "required": ["result"], "additionalProperties": False}
    ask = [{"role": "user", "content": "Compute 345 + 678 with the calculator."}]
    events = list(agent.stream(ask, response_format=_json_schema(schema), max_tokens=60))
    assert any(isinstance(e, ToolResult) and "1023" in e.content for e in events)
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "stop"
    jsonschema.validate(json.loads(done.text), schema)


# --- transformers, under xgrammar ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transformers_model(smollm2_hf_dir):
    from gptbuilder.models.transformers import provider

    config = ModelConfig(provider="transformers", name=str(smollm2_hf_dir), temperature=0, max_tokens=80)
    return provider.create(config, base_dir=Path("."))


@pytest.mark.slow
@pytest.mark.needs_module("xgrammar", extra="gpu")
def test_transformers_answers_follow_the_schema(transformers_model):
    text, finish = _answer(transformers_model, QUESTIONS[0], _json_schema(CITY))
    assert finish == "stop", text
    jsonschema.validate(json.loads(text), CITY)
    text, finish = _answer(transformers_model, QUESTIONS[0], {"type": "json_object"})  # on the others, free JSON rambles
    assert finish == "stop" and isinstance(json.loads(text), dict), text


@pytest.mark.slow
@pytest.mark.needs_module("xgrammar", extra="gpu")
def test_transformers_refuses_what_xgrammar_cannot_compile(transformers_model):
    with pytest.raises(InputError, match=r"cannot be compiled to a grammar: .*missing"):
        transformers_model.check_json_schema({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}})
    with pytest.raises(InputError, match="Integer exceeds"):
        transformers_model.check_json_schema({"type": "integer", "maximum": 10**30})
