"""Fuzzing with hypothesis (issue 17): random and mutated input never gets a 500, a traceback or a hang.

The API routes (chat, legacy completions, Responses, embeddings, moderations, widget messages) get random JSON
and mutations of a valid request (keys dropped, values swapped for any JSON value, known parameters added with
wrong types); the spec loader gets random and mutated YAML; the knowledge loaders get random bytes under each
file type they read. An answer may be a 200 or a clear 4xx in the error envelope; a loader may read the input
or refuse it with its own error — nothing else.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gptbuilder.errors import GPTBuilderError
from gptbuilder.knowledge.loaders import load_file
from gptbuilder.loader import load_spec
from gptbuilder.server import ServerConfig
from tests.server.conftest import ECHO, make_app  # noqa: F401 - fixtures

SITE = "https://shop.example"
# Its knowledge's fake embedder answers /v1/embeddings for "echo" without loading real weights.
WIDGET = ECHO + f"widget: {{allowed_origins: [{SITE}]}}\nknowledge: {{files: [kb/*.md], embedding_model: fake}}\n"
# Each example is a real request through the whole app; a few hundred per route keep this under a minute.
FUZZ = settings(
    max_examples=120,
    deadline=5000,  # a hang is a failure, not a slow example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples every run: a failure here reproduces
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)

VALID_CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
# Parameters the routes know, so mutations reach their validation rather than the unknown-field check.
KNOWN = [
    "model", "messages", "stream", "stream_options", "temperature", "top_p", "max_tokens", "max_completion_tokens",
    "stop", "seed", "user", "n", "tools", "tool_choice", "response_format", "logprobs", "top_logprobs",
    "presence_penalty", "frequency_penalty", "logit_bias", "functions", "function_call", "citations", "approvals",
    "prompt", "input", "instructions", "previous_response_id", "text", "store", "encoding_format", "dimensions",
    "parallel_tool_calls", "metadata",
]
MESSAGE_SHAPES = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "developer", "tool", "function", "x"])},
    optional={
        "content": json_values,
        "tool_calls": json_values,
        "tool_call_id": json_values,
        "name": json_values,
    },
)


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> dict[str, Any]:
    """A valid body with some keys dropped, some values replaced, and some known parameters added."""
    body: dict[str, Any] = {}
    for key, value in valid.items():
        choice = draw(st.sampled_from(["keep", "keep", "drop", "replace"]))
        if choice == "keep":
            body[key] = value
        elif choice == "replace":
            body[key] = draw(json_values | st.lists(MESSAGE_SHAPES, max_size=3))
    for key in draw(st.lists(st.sampled_from(KNOWN), max_size=3, unique=True)):
        body[key] = draw(json_values | st.lists(MESSAGE_SHAPES, max_size=3))
    return body


bodies = {
    "/v1/chat/completions": mutated(VALID_CHAT) | json_values,
    "/v1/completions": mutated({"model": "echo", "prompt": "hi"}) | json_values,
    "/v1/responses": mutated({"model": "echo", "input": "hi"}) | json_values,
    "/v1/embeddings": mutated({"model": "echo", "input": "hi"}) | json_values,
    "/v1/moderations": mutated({"model": "echo", "input": ["hi", "mail me at a@b.example"]}) | json_values,
}


@pytest.fixture
def client(make_app, write_spec, gpts_dir):
    (gpts_dir / "kb").mkdir()
    (gpts_dir / "kb" / "faq.md").write_text("# FAQ\nShoes can be returned within 30 days.\n", encoding="utf-8")
    write_spec("echo", WIDGET)
    return TestClient(make_app(ServerConfig()), raise_server_exceptions=False)


def assert_clear(response: Any) -> None:
    """A success, or a client error in OpenAI's envelope; never a server error or a traceback."""
    assert response.status_code < 500, response.text[:500]
    assert "Traceback" not in response.text
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"]
    for line in response.text.splitlines():  # a stream's error arrives as an event, in the same envelope
        if line.startswith("data: {") and '"error"' in line:
            assert "message" in json.loads(line[6:])["error"]


@pytest.mark.parametrize("route", sorted(bodies))
def test_api_routes_survive_random_and_mutated_json(client, route):
    client.post(route, json={"model": "echo"})  # loads the GPT first: a first call's load time is no hang

    @FUZZ
    @given(body=bodies[route])
    def run(body: Any) -> None:
        assert_clear(client.post(route, json=body))

    run()
    assert client.get("/health").status_code == 200  # and the server is still up


def test_api_routes_survive_bytes_that_are_not_json(client):
    @FUZZ
    @given(raw=st.binary(max_size=200), route=st.sampled_from(sorted(bodies)))
    def run(raw: bytes, route: str) -> None:
        assert_clear(client.post(route, content=raw, headers={"Content-Type": "application/json"}))

    run()


def test_widget_routes_survive_random_messages(client):
    token = client.post("/widget/echo/session", headers={"Origin": SITE}).json()["token"]

    @FUZZ
    @given(body=mutated({"message": "hi"}) | json_values, token_used=st.sampled_from([token, "", "x" * 40]))
    def run(body: Any, token_used: str) -> None:
        assert_clear(client.post("/widget/echo/messages", json=body, headers={"Authorization": f"Bearer {token_used}"}))

    run()


VALID_SPEC = """name: Shop
description: Answers questions.
instructions: Be brief.
model: {provider: fake, options: {replies: [hi]}}
knowledge: {files: [kb/*.md], top_k: 3, min_score: 0.3}
tools: [calculator]
tests:
  - ask: hi
    expect: {contains: [hi]}
"""


@st.composite
def mutated_yaml(draw: st.DrawFn) -> str:
    """The valid spec with lines dropped, cut, duplicated or replaced by random text."""
    lines = VALID_SPEC.splitlines()
    out = []
    for line in lines:
        choice = draw(st.sampled_from(["keep", "keep", "keep", "drop", "cut", "twice", "random"]))
        if choice == "keep":
            out.append(line)
        elif choice == "cut":
            out.append(line[: draw(st.integers(0, len(line)))])
        elif choice == "twice":
            out += [line, line]
        elif choice == "random":
            out.append(draw(st.text(max_size=40)))
    return "\n".join(out)


def test_the_spec_loader_reads_or_refuses_random_yaml(tmp_path):
    path = tmp_path / "fuzzed-gpts" / "fuzzed.yaml"
    path.parent.mkdir()

    @FUZZ
    @given(text=mutated_yaml() | st.text(max_size=300))
    def run(text: str) -> None:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        with contextlib.suppress(GPTBuilderError):  # a clear refusal (SpecError) is fine; anything else fails
            load_spec(path)

    run()


@pytest.mark.parametrize("suffix", [".md", ".txt", ".pdf", ".docx", ".html", ".csv", ".json", ".jsonl"])
def test_knowledge_loaders_read_or_refuse_random_files(tmp_path, suffix):
    path = Path(tmp_path) / f"fuzzed{suffix}"
    seeds = {
        ".pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF",
        ".docx": b"PK\x03\x04" + b"\x00" * 26,
        ".json": b'{"a": [1, 2, {"b": "c"}]}',
        ".jsonl": b'{"a": 1}\n{"b": 2}\n',
        ".csv": b"a,b\n1,2\n",
        ".html": b"<html><body><h1>x</h1><p>y</p></body></html>",
    }
    seed = seeds.get(suffix, b"# Title\n\nText.\n")

    @FUZZ
    @given(data=st.binary(max_size=400) | st.builds(lambda cut, tail: seed[:cut] + tail, st.integers(0, len(seed)), st.binary(max_size=60)))
    def run(data: bytes) -> None:
        path.write_bytes(data)
        try:
            sections = load_file(path)
        except GPTBuilderError:
            return  # KnowledgeFileError: refused with its reason
        assert isinstance(sections, list)

    run()
