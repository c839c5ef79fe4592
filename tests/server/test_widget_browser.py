"""The widget in a real browser: a page on another loopback origin embeds it, chats, sees a streamed answer with its source."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gptbuilder.server import ServerConfig

from .conftest import SlowFake, slow_factory

pytestmark = pytest.mark.browser  # needs Chromium: skipped with the install hint without one, mandatory in .ci/run
ANSWER = "Shoes can be returned within 30 days of delivery [1]. <img src=x onerror=window.pwned=1>"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def static_site(tmp_path: Path) -> Iterator[callable]:
    """Serve a folder on a free loopback port; returns its origin."""
    servers = []

    def start(folder: Path) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Quiet, directory=str(folder)))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_embedded_widget_chats_with_streaming_and_citations(tmp_path, gpts_dir, write_spec, make_app, live, static_site, browser):
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    site = static_site(allowed)
    foreign = static_site(other)
    (gpts_dir / "kb").mkdir()
    (gpts_dir / "kb" / "returns.md").write_text("# Returns\nShoes can be returned within 30 days.\n", encoding="utf-8")
    write_spec(
        "shop",
        "name: Shop\ninstructions: Help.\nconversation_starters: ['How do returns work?']\nmodel: {provider: fake}\n"
        "knowledge: {files: [kb/*.md], embedding_model: fake, answer_mode: generate}\n"  # token by token (verified: by sentence)
        f"widget: {{allowed_origins: ['{site}'], greeting: 'Hi! Ask me about returns.', color: '#aa3300', title: Shop help}}\n",
    )
    model = SlowFake(replies=[ANSWER], delay=0.15)
    server = live(make_app(ServerConfig(api_keys=("sk-never-in-the-page",)), model_factory=slow_factory(model)))
    page_html = f'<!doctype html><title>Shop</title><h1>Our shop</h1><script src="{server.url}/widget.js" data-gpt="shop" async></script>'
    (allowed / "index.html").write_text(page_html, encoding="utf-8")
    (other / "index.html").write_text(page_html, encoding="utf-8")

    page = browser.new_page()
    page.goto(f"{site}/index.html")
    launcher = page.locator("#gptbuilder-launcher")
    launcher.wait_for(timeout=15_000)
    launcher.click()
    frame = page.frame_locator("#gptbuilder-frame")
    frame.locator(".head .title").filter(has_text="Shop help").wait_for(timeout=15_000)
    assert frame.locator(".msg.assistant").first.inner_text() == "Hi! Ask me about returns."
    frame.locator(".starter").filter(has_text="How do returns work?").click()
    assert not frame.locator(".starters").is_visible()  # starters step aside once the chat begins

    answer = frame.locator(".msg.assistant").nth(1)
    answer.filter(has_text="Shoes can").wait_for(timeout=15_000)
    partial = answer.inner_text()
    assert "30 days" not in partial  # seen mid-stream, before the whole answer arrived
    frame.locator(".sources li").first.wait_for(timeout=30_000)
    assert "Shoes can be returned within 30 days of delivery [1]." in answer.inner_text()
    assert "returns.md" in frame.locator(".sources li").first.inner_text()
    assert answer.locator("img").count() == 0
    assert page.evaluate("window.pwned") is None
    assert "sk-never-in-the-page" not in page.content()

    elsewhere = browser.new_page()
    messages: list[str] = []
    elsewhere.on("console", lambda m: messages.append(m.text))
    # the loader logs this once its session request failed, and mounts nothing after that
    with elsewhere.expect_console_message(lambda m: "gptbuilder widget unavailable" in m.text, timeout=15_000):
        elsewhere.goto(f"{foreign}/index.html")
    assert elsewhere.locator("#gptbuilder-launcher").count() == 0
    assert elsewhere.locator("#gptbuilder-frame").count() == 0
    assert any("gptbuilder widget unavailable" in m for m in messages)
