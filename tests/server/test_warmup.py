"""Warm start: every GPT is loaded before /ready says ready; /health answers meanwhile; a failing GPT is reported alone."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import Field

from gptbuilder.errors import ModelError
from gptbuilder.models.fake import FakeChatModel
from gptbuilder.server import ServerConfig
from gptbuilder.server.warmup import LAZY_ENV

from .conftest import ECHO

BAD = "name: Bad\ninstructions: x\nmodel: {provider: fake, options: {replies: [broken]}}\n"
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}


class WarmingFake(FakeChatModel):
    """The fake model with a `warm` that counts its calls, waits at a gate when given one, and fails when told."""

    gate: Any = None
    fail: bool = False
    warmed: list[Any] = Field(default_factory=list)
    entered: Any = Field(default_factory=threading.Event)

    def warm(self, messages: Any, tools: Any = ()) -> None:
        self.warmed.append(messages[-1].text)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.fail:
            raise ModelError("the weights are corrupt")


def factory(models: dict[str, WarmingFake]):
    """A Store model factory: the GPT whose first scripted reply names a model gets it; others a plain WarmingFake."""
    return lambda config, base_dir=None: models.get((config.options.get("replies") or [""])[0]) or WarmingFake()


@contextmanager
def warmed(app: Any, *, timeout: float = 10) -> Iterator[TestClient]:
    """A client of ``app`` (its lifespan running) once warm-up is over and /ready says 200."""
    with TestClient(app) as client:
        assert app.state.gptbuilder.warm_up.wait(timeout)
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        yield client


def knowledge_app(make_app, write_spec, gpts_dir, spec: str, passage: str) -> Any:
    """The app for one GPT, `kb`, whose knowledge is one file, kb/facts.md, holding ``passage``."""
    (gpts_dir / "kb").mkdir(parents=True)
    (gpts_dir / "kb" / "facts.md").write_text(f"# Facts\n\n{passage}\n", encoding="utf-8")
    write_spec("kb", spec)
    return make_app(ServerConfig())


def test_ready_says_warming_until_every_gpt_is_warm(make_app, write_spec):
    write_spec("echo", ECHO)
    gate = threading.Event()
    model = WarmingFake(gate=gate)
    app = make_app(ServerConfig(), model_factory=lambda config, base_dir=None: model)
    with TestClient(app) as client:  # the lifespan starts warm-up in its thread
        assert model.entered.wait(10)
        assert client.get("/health").json() == {"status": "ok"}  # answers while a model is still loading
        warming = client.get("/ready")
        assert warming.status_code == 503
        assert warming.json()["status"] == "warming"
        assert warming.json()["warm_up"] | {"seconds": None} == {
            "state": "warming", "done": 0, "total": 1, "current": "echo", "seconds": None
        }
        gate.set()
        assert app.state.gptbuilder.warm_up.wait(10)
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready" and body["warm_up"]["state"] == "done"
        assert set(body["warm_up"]["seconds"]) == {"echo"} and body["warm_up"]["done"] == 1
        assert model.warmed == ["Say hello"]  # warmed with the GPT's first conversation starter, once


def test_a_gpt_that_fails_to_warm_is_reported_and_the_others_serve(make_app, write_spec, caplog):
    write_spec("echo", ECHO)
    write_spec("bad", BAD)
    bad = WarmingFake(fail=True)
    app = make_app(ServerConfig(), model_factory=factory({"broken": bad}))
    with caplog.at_level(logging.INFO, logger="gptbuilder.server"), TestClient(app) as client:
        assert app.state.gptbuilder.warm_up.wait(10)
        response = client.get("/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "not ready"
        assert body["problems"] == {"bad": "warm-up failed: ModelError: the weights are corrupt"}
        assert list(body["warm_up"]["seconds"]) == ["echo"]  # warmed after the failure, not blocked by it
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    logged = [r.getMessage() for r in caplog.records if r.name == "gptbuilder.server"]
    assert "warm-up: bad failed (ModelError: the weights are corrupt)" in logged
    assert any(m.startswith("warm-up: echo in ") for m in logged)
    assert any(m.startswith("warm-up: 1 of 2 GPTs in ") and m.endswith("; failed: bad") for m in logged)


def test_a_gpt_rebuilt_after_its_warm_up_failed_is_not_blamed(make_app, write_spec):
    path = write_spec("bad", BAD)
    app = make_app(ServerConfig(), model_factory=factory({"broken": WarmingFake(fail=True)}))
    store = app.state.gptbuilder.store
    with TestClient(app) as client:
        assert app.state.gptbuilder.warm_up.wait(10)
        assert client.get("/ready").status_code == 503
        path.write_text(ECHO, encoding="utf-8")  # the operator fixes the spec: a new agent is built
        store.refresh(force=True)
        assert client.get("/ready").status_code == 200


def test_each_gpt_warms_once(make_app, write_spec):
    write_spec("echo", ECHO)
    write_spec("other", ECHO.replace("Echo", "Other"))
    model = WarmingFake()
    app = make_app(ServerConfig(), model_factory=lambda config, base_dir=None: model)
    warm_up = app.state.gptbuilder.warm_up
    with TestClient(app) as client:
        assert warm_up.wait(10)
        warm_up.start()  # a second start does nothing
        for _ in range(3):
            assert client.get("/ready").status_code == 200
    assert len(model.warmed) == 2 and set(warm_up.seconds) == {"echo", "other"}


def test_without_a_lifespan_the_first_ready_warms_before_answering(make_app, write_spec):
    write_spec("echo", ECHO)
    model = WarmingFake()
    client = TestClient(make_app(ServerConfig(), model_factory=lambda config, base_dir=None: model))  # no `with`: no lifespan
    assert model.warmed == []
    assert client.get("/ready").status_code == 200
    assert client.get("/ready").status_code == 200
    assert model.warmed == ["Say hello"]


def test_lazy_never_warms(make_app, write_spec):
    write_spec("echo", ECHO)
    model = WarmingFake()
    app = make_app(ServerConfig(), model_factory=lambda config, base_dir=None: model, warm=False)
    with TestClient(app) as client:
        response = client.get("/ready")
        assert response.status_code == 200 and response.json()["warm_up"] == {"state": "off"}
    assert model.warmed == []


def test_warm_up_builds_the_knowledge_index_and_embeds_the_curated_questions(make_app, write_spec, gpts_dir):
    spec = (
        "name: Shop\ninstructions: x\nmodel: {provider: fake}\nknowledge: {files: ['kb/*.md'], embedding_model: fake}\n"
        "curated_answers: [{question: 'Where are you?', answer: 'Berlin.'}]\n"
    )
    app = knowledge_app(make_app, write_spec, gpts_dir, spec, "Refunds take 14 days.")
    with warmed(app):
        agent = app.state.gptbuilder.store.agent("kb")
        assert not agent.knowledge.index.is_stale()  # indexed before any question
        assert agent.curated._vectors is not None


def test_serve_lazy_tells_the_workers(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from gptbuilder.cli import app

    monkeypatch.setenv(LAZY_ENV, "")  # restored after the test; serve sets it for its workers
    calls = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: calls.append(k))
    result = CliRunner().invoke(app, ["--gpts", str(tmp_path / "g"), "serve", "--lazy"])
    assert result.exit_code == 0, result.output
    assert "each GPT loads on its first request" in result.output
    assert os.environ[LAZY_ENV] == "1"
    assert calls[0]["log_config"]["loggers"]["gptbuilder.server"]["level"] == logging.INFO


def test_app_from_env_honours_lazy(monkeypatch):
    from gptbuilder.server import app

    monkeypatch.setattr(app, "create_app", lambda store, **options: options)  # the store UI takes seconds to build
    monkeypatch.setenv(LAZY_ENV, "1")
    assert app.app_from_env()["warm"] is False
    monkeypatch.setenv(LAZY_ENV, "")
    assert app.app_from_env()["warm"] is True


@pytest.mark.slow
def test_after_ready_a_first_tool_request_loads_nothing_new(make_app, write_spec, gpts_dir):
    """On the embedded model: weights, embedder, knowledge index and tool vectors are all loaded before /ready says 200."""
    from gptbuilder.knowledge.embeddings import SentenceTransformerEmbedder
    from gptbuilder.models import llama_cpp
    from gptbuilder.models.tool_routing import default_router

    spec = (
        "name: Calc\ninstructions: Use the calculator for arithmetic.\nconversation_starters: ['What is 12 * 7?']\n"
        "model: {max_tokens: 24}\nknowledge: {files: ['kb/*.md'], on_no_match: answer}\ntools: [{builtin: calculator}]\n"
    )
    app = knowledge_app(make_app, write_spec, gpts_dir, spec, "A pair of boots costs 120 euros.")

    def loaded() -> tuple[Any, ...]:
        router = default_router()
        return (
            set(llama_cpp._runtimes._runtimes), set(SentenceTransformerEmbedder._models), set(router._vectors),
        )

    with warmed(app, timeout=300) as client:
        before = loaded()
        agent = app.state.gptbuilder.store.agent("kb")
        assert agent.model.runtime is not None and not agent.knowledge.index.is_stale()
        assert all(before), before  # weights, embedder and the calculator's vector are there already
        body = {"model": "kb", "messages": [{"role": "user", "content": "What is 12 * 7?"}], "max_tokens": 24}
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        assert loaded() == before
