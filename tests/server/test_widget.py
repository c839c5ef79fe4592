"""Widget routes: origins, tokens, CSP, per-session and per-IP limits, stored conversations, inert output."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from gptbuilder.history import History
from gptbuilder.server import ServerConfig

from .test_sanitize import active_parts

SITE = "https://shop.example"
EVIL = "https://evil.example"
HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "![](http://evil/?q=secret)",
]


def widget_spec(replies: list[str], origins: list[str] | None = None, extra: str = "") -> str:
    return (
        "name: Shop Helper\ninstructions: Help.\nconversation_starters: [\"Where is my order?\"]\n"
        f"model: {{provider: fake, options: {{replies: {json.dumps(replies)}}}}}\n"
        f"widget: {{allowed_origins: {json.dumps(origins if origins is not None else [SITE])}, "
        "greeting: Hello!, color: '#112233', title: Shop}\n"
        + extra
    )


@pytest.fixture
def client(make_app, write_spec, gpts_dir):
    (gpts_dir / "kb").mkdir()
    (gpts_dir / "kb" / "returns.md").write_text("# Returns\nShoes can be returned within 30 days.\n", encoding="utf-8")
    write_spec("shop", widget_spec(["30 days [1]."], extra="knowledge: {files: [kb/*.md], embedding_model: fake}\n"))
    write_spec("hostile", widget_spec(HOSTILE))
    write_spec("off", widget_spec(["x"], origins=[]))
    write_spec("plain", "name: Plain\ninstructions: x\nmodel: {provider: fake}\n")
    return TestClient(make_app(ServerConfig(api_keys=("sk-secret",), widget_messages_per_session=3)))


def session(client, gpt="shop", origin=SITE):
    return client.post(f"/widget/{gpt}/session", headers={"Origin": origin})


def ask(client, gpt, token, message="Can I return shoes?", origin=None):
    headers = {"Authorization": f"Bearer {token}"}
    if origin:
        headers["Origin"] = origin
    response = client.post(f"/widget/{gpt}/messages", json={"message": message}, headers=headers)
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    return response, events


def test_session_for_an_allowed_origin_has_token_and_look(client):
    response = session(client)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SITE
    assert "access-control-allow-credentials" not in response.headers
    body = response.json()
    assert body["token"].count(".") == 1
    assert body["config"] == {
        "id": "shop", "title": "Shop", "greeting": "Hello!", "color": "#112233", "position": "bottom-right",
        "theme": "auto", "avatar": None, "placeholder": "Type a message…", "open_on_load": False,
        "starters": ["Where is my order?"],
    }


@pytest.mark.parametrize("origin", [EVIL, "https://shop.example.evil.example", "http://shop.example", "null"])
def test_disallowed_origin_gets_403_and_no_cors_header(client, origin):
    response = session(client, origin=origin)
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options("/widget/shop/session", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_no_origin_no_session(client):
    assert client.post("/widget/shop/session").status_code == 403


@pytest.mark.parametrize("gpt", ["off", "plain", "missing"])
def test_widget_off_without_allowed_origins(client, gpt):
    assert session(client, gpt).status_code == 404
    assert client.get(f"/widget/{gpt}").status_code == 404


def test_page_only_framed_by_allowed_origins(client):
    page = client.get("/widget/shop")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert f"frame-ancestors {SITE}" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert '<script src="assets/frame.js"></script>' in page.text
    assert client.get("/widget/assets/frame.js").status_code == 200
    assert client.get("/widget/assets/../app.py").status_code == 404


def test_chat_streams_sanitized_html_and_citations_and_is_stored(client, make_app):
    token = session(client).json()["token"]
    response, events = ask(client, "shop", token, origin=SITE)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SITE
    kinds = [e["type"] for e in events]
    assert kinds[0] == "delta" and kinds[-2:] == ["citations", "done"]
    assert events[-1]["html"] == "<p>30 days [1].</p>\n"
    [citation] = events[-2]["citations"]
    assert citation["source"].endswith("returns.md") and citation["cited"] is True
    history = History(client.app.state.gptbuilder.history.db)
    [conversation] = history.conversations("shop")
    # the visitor's session owns it: random, so nobody can name "widget:<site>" to list visitors' chats
    assert conversation.channel == "widget" and re.fullmatch(r"widget:[0-9a-f]{32}", conversation.owner)
    stored = history.messages(conversation.id)
    assert [(m.role, m.content) for m in stored] == [("user", "Can I return shoes?"), ("assistant", "30 days [1].")]
    assert stored[1].extra["citations"][0]["number"] == 1
    [usage] = client.app.state.gptbuilder.ledger.lines(key_id=f"widget:{SITE}")
    assert usage.gpt_id == "shop" and usage.requests == 1 and usage.completion_tokens > 0


def test_conversation_continues_in_the_session(client):
    token = session(client).json()["token"]
    ask(client, "shop", token)
    ask(client, "shop", token, "And sandals?")
    history = client.app.state.gptbuilder.history
    [conversation] = history.conversations("shop")
    assert [m.role for m in history.messages(conversation.id)] == ["user", "assistant", "user", "assistant"]


def test_hostile_output_is_inert(client):
    rendered = []
    for _ in HOSTILE:
        token = session(client, "hostile").json()["token"]
        rendered.append(ask(client, "hostile", token, "x")[1][-1]["html"])
    for html in rendered:
        assert active_parts(html) == [], html
    assert rendered[0] == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    assert "http://evil" not in rendered[3]


def test_forged_expired_and_foreign_tokens_are_403(client, make_app):
    token = session(client).json()["token"]
    payload, signature = token.split(".")
    forged = f"{payload}.{signature[:-2]}AA"
    for bad in (forged, "", "abc", f"{payload}x.{signature}"):
        response, _ = ask(client, "shop", bad)
        assert response.status_code == 403 and "access-control-allow-origin" not in response.headers
    other = session(client, "hostile").json()["token"]
    response, _ = ask(client, "shop", other)
    assert response.status_code == 403 and "another GPT" in response.json()["error"]["message"]
    expiring = TestClient(make_app(ServerConfig(widget_token_seconds=-1)))
    stale = session(expiring).json()["token"]
    response, _ = ask(expiring, "shop", stale)
    assert response.status_code == 403 and "expired" in response.json()["error"]["message"]


def test_messages_from_a_disallowed_origin_are_403(client):
    token = session(client).json()["token"]
    response, _ = ask(client, "shop", token, origin=EVIL)
    assert response.status_code == 403 and "access-control-allow-origin" not in response.headers


def test_per_session_message_limit(client):
    token = session(client).json()["token"]
    assert [ask(client, "shop", token)[0].status_code for _ in range(4)] == [200, 200, 200, 429]


def test_per_ip_message_limit(make_app, write_spec):
    write_spec("shop", widget_spec(["ok"]))
    client = TestClient(make_app(ServerConfig(widget_messages_per_minute_per_ip=2)))
    token = session(client).json()["token"]
    statuses = [ask(client, "shop", token)[0].status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_widget_never_needs_or_sees_an_api_key(client):
    script = client.get("/widget.js")
    assert script.status_code == 200 and "sk-secret" not in script.text
    assert session(client).status_code == 200


def test_empty_and_oversized_messages_are_refused(client):
    token = session(client).json()["token"]
    assert ask(client, "shop", token, "")[0].status_code == 400
    assert ask(client, "shop", token, "x" * 5000)[0].status_code == 400


@pytest.mark.slow
def test_widget_on_the_embedded_model(make_app, write_spec):
    write_spec("real", f"name: Real\ninstructions: You are a helpful assistant. Answer briefly.\nwidget: {{allowed_origins: ['{SITE}']}}\n")
    client = TestClient(make_app(ServerConfig()))
    token = session(client, "real").json()["token"]
    response, events = ask(client, "real", token, "What is the capital of France?")
    assert response.status_code == 200
    deltas = [e for e in events if e["type"] == "delta"]
    assert len(deltas) > 1 and events[-1]["type"] == "done"
    assert "Paris" in events[-1]["html"]


def test_the_chat_page_itself_may_post_messages(client):
    token = session(client).json()["token"]
    response, events = ask(client, "shop", token, origin="http://testserver")  # the iframe, same origin as the server
    assert response.status_code == 200 and events[-1]["type"] == "done"
    assert "access-control-allow-origin" not in response.headers


def test_a_curated_answer_is_marked_in_the_widget_stream(make_app, write_spec):
    write_spec(
        "faq",
        widget_spec(["model"], extra="knowledge: {files: [], embedding_model: fake}\n"
                    "curated_answers:\n  - {question: 'Do you ship to Canada?', answer: 'Yes, in 5-8 days.'}\n"),
    )
    client = TestClient(make_app(ServerConfig(api_keys=("sk-secret",))))
    token = session(client, "faq").json()["token"]
    _, events = ask(client, "faq", token, "Do you ship to Canada?", origin=SITE)
    assert events[0]["type"] == "curated"
    assert events[-1]["html"] == "<p>Yes, in 5-8 days.</p>\n"
