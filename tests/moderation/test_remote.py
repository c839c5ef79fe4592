"""The remote check against a loopback /v1/moderations: flagged text blocks (input and a streamed answer, with a
bounded number of calls), errors follow on_error, requests go through the SSRF guard, and the store's specs
may only name allowed endpoints and variables."""

from __future__ import annotations

import logging
import time

import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import HumanMessage

from gptbuilder.agent import compile_agent
from gptbuilder.errors import ModelError, SpecError
from gptbuilder.events import Moderated, TextDelta, Transcript
from gptbuilder.loader import load_spec
from gptbuilder.moderation import MODERATION_ENV, Moderation, read_moderation_file
from gptbuilder.moderation.remote import RemoteCheck
from gptbuilder.server import ServerConfig
from gptbuilder.settings import TrustPolicy
from gptbuilder.spec import ModerationConfig, RemoteModerationConfig
from gptbuilder.turn import Turn
from gptbuilder.turn.moderation import ModerateInput, ModerationGuard
from tests.fake_openai_server import FakeOpenAIServer
from tests.server.conftest import ECHO, make_app  # noqa: F401
from tests.turn.helpers import drain

REFUSAL = "Not here."
SENTENCE = "This sentence is perfectly harmless and goes on for a while. "  # 61 characters


@pytest.fixture
def endpoint():
    with FakeOpenAIServer(api_key="sk-mod") as server:
        yield server


def remote(server: FakeOpenAIServer, **fields) -> RemoteModerationConfig:
    return RemoteModerationConfig(**{"url": f"{server.base_url}/moderations", "api_key_env": "MOD_KEY",
                                     "allow_private_network": True, "timeout": 2, **fields})


def moderation(server: FakeOpenAIServer, **fields) -> Moderation:
    return Moderation.from_config(ModerationConfig(refusal=REFUSAL, remote=remote(server, **fields)))


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("MOD_KEY", "sk-mod")


def test_a_flagged_text_is_a_finding_with_the_endpoints_category(endpoint):
    check = RemoteCheck(remote(endpoint, model="omni-moderation-latest"))
    assert check.check("how do I build a bomb") is not None
    assert check.check("how do I build a bomb").category == "violence"
    assert check.check("how do I bake bread") is None
    sent = endpoint.requests[-1]
    assert sent.headers["authorization"] == "Bearer sk-mod"
    assert sent.body == {"input": "how do I bake bread", "model": "omni-moderation-latest"}


def test_a_missing_key_variable_is_a_clear_error(endpoint, monkeypatch):
    monkeypatch.delenv("MOD_KEY")
    with pytest.raises(ModelError, match=r"MOD_KEY is not set.*moderation\.remote\.api_key_env"):
        RemoteCheck(remote(endpoint))


def test_the_input_stage_asks_the_endpoint_about_the_masked_message(endpoint):
    config = ModerationConfig(refusal=REFUSAL, pii="mask", remote=remote(endpoint))
    stage = ModerateInput(Moderation.from_config(config))
    events, done = drain(stage(Turn("bot", [HumanMessage("you nasty thing, write to bob@example.com")])))
    assert events == [Moderated("input", "remote", "harassment", "blocked"), TextDelta(REFUSAL)]
    assert done is not None and done.finish_reason == "content_filter"
    assert endpoint.moderation_inputs == ["you nasty thing, write to [email]"]  # a third party never sees the email
    assert drain(stage(Turn("bot", [HumanMessage("a kind question")])))[1] is None


def stream(guard: ModerationGuard, text: str, size: int = 7) -> tuple[list[str], str]:
    """What came out after each piece, and everything shown (finish included)."""
    after_each = []
    for start in range(0, len(text), size):
        after_each.append("".join(e.text for e in guard.feed(TextDelta(text[start:start + size])) if isinstance(e, TextDelta)))
    tail = "".join(e.text for e in guard.finish() if isinstance(e, TextDelta))
    return after_each, "".join(after_each) + tail


def test_an_answer_is_judged_in_pieces_with_a_bounded_number_of_calls(endpoint):
    answer = SENTENCE * 20  # 1,220 characters
    guard = ModerationGuard(moderation(endpoint, every=300))
    after_each, shown = stream(guard, answer)
    assert shown == answer and guard.halted is None
    calls = len(endpoint.moderation_inputs)
    assert calls <= len(answer) // 300 + 1  # one per 300 characters, and one for the rest at the end
    assert all(len(text) <= 2 * 300 + 7 for text in endpoint.moderation_inputs)  # a piece and the one before it
    assert next(len(piece) for piece in after_each if piece) >= 300  # released once judged: in steps of `every`


def test_a_flagged_answer_stops_before_the_flagged_piece_is_shown(endpoint):
    answer = SENTENCE * 6 + "Here is how to make a bomb at home. " + SENTENCE * 6
    guard = ModerationGuard(moderation(endpoint, every=100))
    _, shown = stream(guard, answer)
    assert guard.halted == "content_filter"
    assert "bomb" not in shown and shown.endswith("\n\n" + REFUSAL)
    assert shown.startswith(SENTENCE)  # what passed before the flagged piece was shown
    assert len(endpoint.moderation_inputs) <= len(answer) // 100 + 1


def test_the_end_of_an_answer_is_judged_too(endpoint):
    guard = ModerationGuard(moderation(endpoint, every=500))
    _, shown = stream(guard, "Short, but nasty.")
    assert shown == REFUSAL and len(endpoint.moderation_inputs) == 1  # nothing was shown before it


@pytest.mark.parametrize(
    ("break_it", "why"),
    [
        (lambda server: setattr(server, "fail_with", (500, "overloaded")), "answered 500"),
        (lambda server: setattr(server, "moderation_reply", {"results": "nope"}), "not a moderation result"),
        (lambda server: setattr(server, "moderation_reply", {"results": [{"flagged": "yes"}]}), "not a moderation result"),
        (lambda server: setattr(server, "hang", 5.0), "no answer"),
    ],
)
@pytest.mark.parametrize("on_error", ["block", "allow"])
def test_an_endpoint_that_cannot_judge_follows_on_error(endpoint, break_it, why, on_error, caplog):
    break_it(endpoint)
    check = RemoteCheck(remote(endpoint, on_error=on_error, timeout=0.5))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gptbuilder.moderation"):
        verdict = check.check("a kind question")
    assert time.monotonic() - started < 3  # the timeout bounds a hanging endpoint
    if on_error == "block":
        assert verdict is not None and (verdict.check, verdict.category) == ("remote", "unavailable")
    else:
        assert verdict is None
    assert why in caplog.text and f"on_error: {on_error}" in caplog.text


def test_a_loopback_endpoint_is_refused_unless_private_networks_are_allowed(endpoint, caplog):
    check = RemoteCheck(remote(endpoint, allow_private_network=False))
    with caplog.at_level(logging.WARNING, logger="gptbuilder.moderation"):
        verdict = check.check("a kind question")
    assert verdict is not None and verdict.category == "unavailable"  # fails closed
    assert "loopback" in caplog.text and endpoint.requests == []
    assert RemoteCheck(remote(endpoint, allow_private_network=False), allow_private=True).check("hi") is None


SPEC = """
name: Bot
instructions: Be brief.
allow_private_network: true
model: {{provider: fake, options: {{replies: {replies}}}}}
moderation:
  refusal: Not here.
  remote: {{url: "{url}", api_key_env: MOD_KEY, every: 100}}
"""


def test_an_agent_checks_messages_and_answers_remotely(endpoint, write_spec):
    url = f"{endpoint.base_url}/moderations"
    path = write_spec("bot", SPEC.format(replies=[SENTENCE * 3 + "Then the bomb goes off. " + SENTENCE], url=url))
    bot = compile_agent(load_spec(path))  # the GPT's allow_private_network reaches its endpoint, as for actions
    refused = Transcript.from_events(bot.stream("you are nasty"))
    assert refused.text == REFUSAL and refused.blocked_by == Moderated("input", "remote", "harassment", "blocked")
    assert bot.model.calls == []
    answer = Transcript.from_events(bot.stream("tell me a story"))
    assert answer.finish_reason == "content_filter" and "bomb" not in answer.text
    assert answer.blocked_by == Moderated("output", "remote", "violence", "blocked")


def test_the_server_default_file_takes_a_remote_endpoint(tmp_path):
    path = tmp_path / "moderation.yaml"
    path.write_text("remote: {url: 'https://moderation.example/v1/moderations', api_key_env: MOD_KEY, on_error: allow}\n")
    config = read_moderation_file(path)
    assert config.remote is not None and config.remote.on_error == "allow" and config.remote.timeout == 5
    path.write_text("remote: {url: 'ftp://moderation.example', on_error: maybe}\n")
    with pytest.raises(SpecError, match=r"remote\.url[\s\S]*remote\.on_error"):
        read_moderation_file(path)


def test_a_spec_saved_through_the_store_names_only_allowed_endpoints_and_variables(write_spec):
    spec = ("name: Bot\ninstructions: x\nmodel: {provider: fake}\nmoderation:\n"
            "  remote: {url: 'http://10.0.0.5/v1/moderations', api_key_env: MOD_KEY, allow_private_network: true}\n")
    path = write_spec("bot", spec)
    with pytest.raises(SpecError) as refused:
        load_spec(path, trusted=False, policy=TrustPolicy())
    message = str(refused.value)
    assert "moderation.remote.url: http://10.0.0.5/v1/moderations is not an endpoint allowed" in message
    assert "moderation.remote.api_key_env: environment variable MOD_KEY is not allowed" in message
    assert "moderation.remote.allow_private_network: private networks are not allowed" in message
    allowed = TrustPolicy(base_urls=("http://10.0.0.5/v1",), secret_envs=frozenset({"MOD_KEY"}))
    write_spec("bot", spec.replace(", allow_private_network: true", ""))
    assert load_spec(path, trusted=False, policy=allowed).spec.moderation.remote.url.startswith("http://10.0.0.5")


def test_the_server_default_endpoint_fills_openais_categories_and_blocks_chats(endpoint, make_app, write_spec, tmp_path,
                                                                               monkeypatch):
    default = tmp_path / "moderation.yaml"
    default.write_text(f"pii: mask\nremote: {{url: '{endpoint.base_url}/moderations', api_key_env: MOD_KEY, "
                       "allow_private_network: true}\n", encoding="utf-8")
    monkeypatch.setenv(MODERATION_ENV, str(default))
    write_spec("echo", ECHO)
    client = TestClient(make_app(ServerConfig()))
    results = client.post("/v1/moderations", json={"input": ["a nasty remark", "hello bob@example.com"]}).json()["results"]
    assert results[0]["flagged"] is True and results[0]["categories"]["harassment"] is True
    assert results[0]["category_scores"]["harassment"] == 0.97 and results[0]["categories"]["hate"] is False
    assert {"check": "remote", "category": "harassment", "action": "blocked", "start": 0, "end": 14} in results[0]["findings"]
    assert results[1]["flagged"] is True and results[1]["categories"]["harassment"] is False  # the email, masked
    chat = client.post("/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "nasty"}]}).json()
    assert chat["choices"][0]["finish_reason"] == "content_filter"
    blocked = {"side": "input", "check": "remote", "category": "harassment", "action": "blocked"}
    assert chat["choices"][0]["message"]["moderation"] == [blocked]
    assert 'check="remote"' in client.get("/metrics").text
    endpoint.fail_with = (503, "down")
    down = client.post("/v1/moderations", json={"input": "hello"}).json()["results"][0]
    assert down["flagged"] is True and down["categories"]["remote/unavailable"] is True  # on_error: block
