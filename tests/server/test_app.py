"""The app: keys on every protected route, caps, bad input, the bounded queue, disconnects, health, metrics."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from gptbuilder.server import ServerConfig

from .conftest import SlowFake, slow_factory

KEY = "sk-app-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
AUTH_JSON = {**AUTH, "Content-Type": "application/json"}  # a raw body sent as JSON
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}

PROTECTED = [
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/echo", None),
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/completions", {"model": "echo", "prompt": "hi"}),
    ("POST", "/v1/models/echo/completions", {"prompt": "hi"}),
    ("GET", "/v1/usage", None),
    ("GET", "/ready", None),
    ("GET", "/metrics", None),
    ("GET", "/v1/docs", None),
    ("GET", "/v1/openapi.json", None),
]


@pytest.fixture
def client(make_app, echo):
    return TestClient(make_app(ServerConfig(api_keys=(KEY,))))


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_every_protected_route_needs_a_valid_key(client, method, path, body):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic !!!"}, {"x-api-key": "nope"}):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.json()["error"]["type"] == "authentication_error"
        assert "WWW-Authenticate" in response.headers
    assert client.request(method, path, json=body, headers=AUTH).status_code == 200
    assert client.request(method, path, json=body, headers={"x-api-key": KEY}).status_code == 200


def test_health_and_widget_script_need_no_key(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/widget.js").status_code == 200


def test_store_ui_is_mounted_and_asks_for_the_key(make_app, echo):
    client = TestClient(make_app(ServerConfig(api_keys=(KEY,)), ui=True))
    refused = client.get("/")  # a script, not a browser: JSON and a Bearer challenge (browsers: tests/security/test_roles.py)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Bearer realm="gptbuilder"'
    page = client.get("/", auth=("anyone", KEY))
    assert page.status_code == 200 and "gradio" in page.text.lower()


def test_store_ui_without_keys_is_open(make_app, echo):
    client = TestClient(make_app(ServerConfig(), ui=True))
    assert client.get("/").status_code == 200
    assert client.get("/v1/models").status_code == 200


def test_the_mounted_store_refuses_uploads_over_the_builder_limit(make_app, echo):
    from gptbuilder.builder import MAX_UPLOAD_BYTES

    client = TestClient(make_app(ServerConfig(), ui=True), base_url="http://localhost")  # keyless: writes from loopback only
    big = client.post("/gradio_api/upload", files={"files": ("big.md", b"x" * (MAX_UPLOAD_BYTES + 1), "text/markdown")})
    assert big.status_code == 413
    small = client.post("/gradio_api/upload", files={"files": ("small.md", b"# ok\n", "text/markdown")})
    assert small.status_code == 200


def test_ready_and_metrics(client):
    ready = client.get("/ready", headers=AUTH)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    text = client.get("/metrics", headers=AUTH).text
    assert 'gptbuilder_requests_total{route="/v1/chat/completions",status="200"} 1.0' in text
    assert 'gptbuilder_tokens_total{kind="completion",model="echo"} 3.0' in text
    assert "gptbuilder_request_seconds_bucket" in text and "gptbuilder_queue_depth 0.0" in text


def test_ready_reports_a_gpt_whose_model_cannot_load(make_app, write_spec, echo):
    write_spec("broken", "name: B\ninstructions: x\n"
                         "model: {provider: openai, name: m, base_url: 'http://127.0.0.1:9/v1', api_key_env: NOPE_KEY}\n")
    client = TestClient(make_app(ServerConfig()))
    response = client.get("/ready")
    assert response.status_code == 503 and "broken" in response.json()["problems"]


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "echo"}, "messages"),
        ({"model": "echo", "messages": []}, "empty"),
        ({"model": "echo", "messages": "hello"}, "messages"),
        ({"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"model": "echo", "messages": [{"role": "user", "content": "x"}], "n": 3}, "n=1"),
        ({"model": "echo", "messages": [{"role": "user", "content": "x"}], "temperature": 5}, "temperature"),
        ({"model": "echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10_000_000}, "cap"),
        ({"model": "echo", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "image_url"),
        ({"model": "echo", "messages": [{"role": "assistant", "content": "x"}]}, "end with a user message"),
        ({"model": "echo", "messages": [{"role": "user", "content": "   "}]}, "empty"),
        ({"model": "echo", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}, "tools"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
)
def test_bad_chat_requests_are_400_with_a_clear_message(client, body, needle):
    error = _error(client.post("/v1/chat/completions", json=body, headers=AUTH), 400)
    assert needle in error["message"]
    assert error["type"] == "invalid_request_error"


def test_ten_thousand_messages_are_refused(client):
    messages = [{"role": "user", "content": "x"}] * 10_000
    error = _error(client.post("/v1/chat/completions", json={"model": "echo", "messages": messages}, headers=AUTH), 400)
    assert "10,000 messages" in error["message"] and error["param"] == "messages"


def test_overlong_message_is_refused(client):
    body = {"model": "echo", "messages": [{"role": "user", "content": "x" * 200_000}]}
    assert "200,000 characters" in _error(client.post("/v1/chat/completions", json=body, headers=AUTH), 400)["message"]


def test_invalid_json_is_400(client):
    response = client.post("/v1/chat/completions", content=b'{"model": "echo", "messages": [', headers=AUTH_JSON)
    assert _error(response, 400)["code"] == "invalid_json"


def test_twenty_megabyte_body_is_413(client):
    big = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "x" * 20_000_000}]}).encode()
    assert "larger than" in _error(client.post("/v1/chat/completions", content=big, headers=AUTH_JSON), 413)["message"]

    def chunks():  # no Content-Length: the cap applies while reading
        for start in range(0, len(big), 1_000_000):
            yield big[start : start + 1_000_000]

    _error(client.post("/v1/chat/completions", content=chunks(), headers=AUTH_JSON), 413)


def test_unknown_model_is_404_with_did_you_mean(client):
    error = _error(client.post("/v1/chat/completions", json={**CHAT, "model": "ecco"}, headers=AUTH), 404)
    assert "did you mean 'echo'" in error["message"] and error["code"] == "model_not_found"
    assert _error(client.get("/v1/models/nope", headers=AUTH), 404)["param"] == "model"


def test_per_key_rate_limit_is_429_with_retry_after(make_app, echo):
    client = TestClient(make_app(ServerConfig(api_keys=(KEY,), requests_per_minute_per_key=3)))
    assert [client.get("/v1/models", headers=AUTH).status_code for _ in range(3)] == [200] * 3
    response = client.get("/v1/models", headers=AUTH)
    assert _error(response, 429)["type"] == "rate_limit_error"
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_the_store_pages_own_scripts_and_styles_do_not_spend_the_keys_request_limit(make_app, echo):
    import re

    client = TestClient(make_app(ServerConfig(api_keys=(KEY,), requests_per_minute_per_key=4), ui=True))
    page = client.get("/", headers=AUTH)
    assert page.status_code == 200
    assets = sorted(set(re.findall(r'(?:src|href)="(/?[^"]+\.(?:js|css))"', page.text)))
    assert assets, "the store page names its scripts and styles"
    for _ in range(3):  # three page loads' worth of assets, well past the limit of 4
        for asset in assets:
            assert client.get("/" + asset.lstrip("/"), headers=AUTH).status_code != 429
    assert client.get("/assets/missing.js").status_code == 401, "assets still need the key"
    assert [client.get("/v1/models", headers=AUTH).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_per_ip_rate_limit_applies_without_keys(make_app, echo):
    client = TestClient(make_app(ServerConfig(requests_per_minute_per_ip=2)))
    assert [client.get("/v1/models").status_code for _ in range(3)] == [200, 200, 429]


def test_gpt_limits_from_the_spec(make_app, write_spec):
    write_spec("small", "name: S\ninstructions: x\nmodel: {provider: fake}\nlimits: {requests_per_minute: 2}\n")
    write_spec("budget", "name: B\ninstructions: x\nmodel: {provider: fake}\nlimits: {tokens_per_day: 20}\n")
    client = TestClient(make_app(ServerConfig()))
    ask = lambda gpt: client.post("/v1/chat/completions", json={**CHAT, "model": gpt})  # noqa: E731
    assert [ask("small").status_code for _ in range(3)] == [200, 200, 429]
    first = ask("budget")
    assert first.status_code == 200 and first.json()["usage"]["total_tokens"] > 0
    second = ask("budget")
    if second.status_code == 200:  # the first answer may leave some of the budget
        assert first.json()["usage"]["total_tokens"] + second.json()["usage"]["total_tokens"] >= 20
        second = ask("budget")
    assert "tokens for today" in _error(second, 429)["message"]
    assert int(second.headers["Retry-After"]) > 60


def test_full_queue_answers_503_quickly(make_app, live, echo):
    model = SlowFake(replies=["word " * 40], delay=0.05)
    server = live(make_app(ServerConfig(workers=1, queue_size=0), model_factory=slow_factory(model)))
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30) as busy:
        lines = busy.iter_lines()
        next(lines)
        started = time.perf_counter()
        refused = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, timeout=30)
        assert time.perf_counter() - started < 2
        assert _error(refused, 503)["code"] == "queue_full"
        assert refused.headers["Retry-After"] == "1"
        list(lines)
    model.replies[:] = ["short answer"]  # served again once the busy stream is over (no need for a long answer)
    assert httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, timeout=30).status_code == 200


def test_client_disconnect_stops_generation_and_the_next_request_is_served(make_app, live, echo):
    model = SlowFake(replies=["word " * 200], delay=0.02)
    app = make_app(ServerConfig(workers=1, queue_size=0), model_factory=slow_factory(model))
    server = live(app)
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30) as response:
        lines = response.iter_lines()
        for _ in range(5):
            next(lines)
    deadline = time.monotonic() + 5
    while app.state.gptbuilder.queue.depth and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.state.gptbuilder.queue.depth == 0
    stopped_at = model.produced[0]
    time.sleep(0.3)
    assert model.produced[0] == stopped_at < 150
    model.replies[:] = ["short answer"]
    reply = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, timeout=30).json()
    assert reply["choices"][0]["message"]["content"] == "short answer"


def test_concurrent_streams_never_interleave(make_app, live, echo):
    model = SlowFake(delay=0.005)
    server = live(make_app(ServerConfig(workers=4, queue_size=16), model_factory=slow_factory(model)))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    results: dict[int, str] = {}

    def ask(i: int) -> None:
        words = " ".join(f"w{i}-{n}" for n in range(15))
        stream = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": words}], stream=True)
        results[i] = (words, "".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 12
    for words, text in results.values():
        assert text == f"You said: {words}"


def test_error_after_the_stream_started_is_an_error_event(make_app, live, write_spec):
    write_spec("flaky", "name: F\ninstructions: x\nmodel: {provider: fake, options: {fail_after: 2}}\n")
    server = live(make_app(ServerConfig()))
    body = {"model": "flaky", "messages": [{"role": "user", "content": "one two three four"}], "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    error = json.loads(events[-2])["error"]
    assert error["type"] == "server_error" and "failed on purpose" in error["message"]
    assert "Traceback" not in "".join(events)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIError, match="failed on purpose"):
        list(client.chat.completions.create(model="flaky", messages=body["messages"], stream=True))


def test_client_leaving_a_non_streamed_request_stops_generation(make_app, live, echo):
    model = SlowFake(replies=["word " * 200], delay=0.02)
    app = make_app(ServerConfig(workers=1, queue_size=0), model_factory=slow_factory(model))
    server = live(app)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, timeout=0.8)
    deadline = time.monotonic() + 5
    while app.state.gptbuilder.queue.depth and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.state.gptbuilder.queue.depth == 0
    assert model.produced[0] < 150
    model.replies[:] = ["short answer"]
    reply = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, timeout=30).json()
    assert reply["choices"][0]["message"]["content"] == "short answer"


def test_keepalives_are_sse_comments(make_app, live, echo):
    model = SlowFake(replies=["slow " * 2], delay=0.4)  # each 0.4 s gap is two keepalive periods
    server = live(make_app(ServerConfig(keepalive_seconds=0.2), model_factory=slow_factory(model)))
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30) as response:
        lines = [line for line in response.iter_lines() if line]
    comments = [line for line in lines if line.startswith(":")]
    assert comments, lines
    data = [line.removeprefix("data: ") for line in lines if not line.startswith(":")]
    assert data[-1] == "[DONE]" and all(json.loads(d)["object"] == "chat.completion.chunk" for d in data[:-1])


@pytest.mark.slow
def test_concurrent_streams_on_the_embedded_model_match_their_solo_answers(make_app, live, write_spec):
    write_spec("smol", "name: Smol\ninstructions: You are a helpful assistant. Answer in one sentence.\n")
    server = live(make_app(ServerConfig()))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    prompts = [f"Write one sentence about {topic}." for topic in ("the sea", "coffee", "trains", "bees")]

    def ask(prompt: str) -> str:
        stream = client.chat.completions.create(
            model="smol", messages=[{"role": "user", "content": prompt}], stream=True, max_tokens=16, temperature=0, seed=1
        )
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    solo = [ask(p) for p in prompts]
    together: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, ask(prompts[i]))) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [together[i] for i in range(len(prompts))] == solo
    assert all(text.strip() for text in solo)


def test_websockets_to_the_store_need_the_key_too(make_app, echo):
    from starlette.websockets import WebSocketDisconnect

    client = TestClient(make_app(ServerConfig(api_keys=(KEY,)), ui=True))
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/gradio_api/anything") as ws:
        ws.receive_text()
    assert closed.value.code == 1008


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_event_loop_keeps_serving_while_a_gpt_compiles(make_app, write_spec, echo):
    import asyncio

    from gptbuilder.models.fake import FakeChatModel

    write_spec("slow", "name: Slow\ninstructions: x\nmodel: {provider: fake, temperature: 0.7}\n")
    entered, release = threading.Event(), threading.Event()

    def factory(config, base_dir=None):
        if config.temperature == 0.7:  # the slow GPT's model takes until the test lets it finish
            entered.set()
            assert release.wait(10), "the test never released the slow compile"
        return FakeChatModel()

    app = make_app(ServerConfig(), model_factory=factory)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        slow = asyncio.create_task(client.post("/v1/chat/completions", json={**CHAT, "model": "slow"}))
        try:
            assert await asyncio.to_thread(entered.wait, 10)
            # The app runs in this very event loop: if the compile held it, none of these could answer.
            health = await asyncio.wait_for(client.get("/health"), 5)
            assert health.status_code == 200
            other = await asyncio.wait_for(client.post("/v1/chat/completions", json=CHAT), 5)
            assert other.json()["choices"][0]["message"]["content"] == "You said: hi"
            assert not slow.done()
        finally:
            release.set()
        answer = await asyncio.wait_for(slow, 10)
    assert answer.status_code == 200
    assert answer.json()["model"] == "slow"


def test_a_full_disk_while_indexing_is_a_507_that_says_so(make_app, write_spec, gpts_dir, monkeypatch):
    import sqlite3

    from gptbuilder.knowledge.index import KnowledgeIndex

    (gpts_dir / "kb").mkdir()
    (gpts_dir / "kb" / "faq.md").write_text("# FAQ\nShoes can be returned within 30 days.\n", encoding="utf-8")
    write_spec("acme", "name: Acme\ninstructions: x\nmodel: {provider: fake}\nknowledge: {files: [kb/*.md], embedding_model: fake}\n")

    def full(*_args, **_kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(KnowledgeIndex, "_flush", full)
    client = TestClient(make_app(ServerConfig()), raise_server_exceptions=False)
    response = client.post("/v1/chat/completions", json={"model": "acme", "messages": [{"role": "user", "content": "returns?"}]})
    assert response.status_code == 507
    assert response.json()["error"]["code"] == "insufficient_storage" and "disk is full" in response.json()["error"]["message"]
