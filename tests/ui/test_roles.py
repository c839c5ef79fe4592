"""Signing in to a keyed `serve` in a real headless Chromium: a person pastes their key, sees what their role may do.

Before roles a browser opening a keyed store got a raw JSON 401 with no way in, and every key saw the Create
tab. Now the store sends it to a sign-in page, a `user` key gets the store without Create, a `builder` key
with it, and signing out goes back to the sign-in page.
"""

from __future__ import annotations

import httpx
import pytest

from gptbuilder.server.config import ServerConfig
from tests.server.conftest import ECHO, live, make_app  # noqa: F401 - fixtures
from tests.ui.test_browser import browser  # noqa: F401 - the headless Chromium fixture

pytestmark = pytest.mark.browser  # needs Chromium: skipped with the install hint without one, mandatory in .ci/run
USER, BUILDER = "sk-browser-user-0123456", "sk-browser-builder-0123"


@pytest.fixture
def store_url(write_spec, make_app, live) -> str:
    write_spec("echo", ECHO)
    url = live(make_app(ServerConfig(api_keys=(USER, BUILDER), builder_keys=(BUILDER,)), ui=True)).url
    # Gradio's queue starts in the app's lifespan, which the test server leaves off: start it as `serve` would
    httpx.get(f"{url}/gradio_api/startup-events", headers={"Authorization": f"Bearer {BUILDER}"}, timeout=30).raise_for_status()
    return url


def _sign_in(page, url: str, key: str) -> None:
    page.goto(f"{url}/")
    page.get_by_role("heading", name="Sign in to the GPT store").wait_for(timeout=10_000)
    assert "/signin?next=" in page.url
    assert "missing API key" not in page.content()  # the sign-in page, not the JSON 401
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").wait_for(timeout=30_000)  # the store, after its load event ran
    page.get_by_role("button", name="Chat with Echo").wait_for(timeout=10_000)


def _account(page) -> str:
    """The "Signed in as …" line at the top of the store, as one line."""
    return " ".join(page.locator(".gb-account").inner_text().split())


def test_a_user_signs_in_without_create_and_signs_out(browser, store_url, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, store_url, USER)
    assert page.url.rstrip("/") == store_url
    assert _account(page).startswith("Signed in as user")
    assert page.get_by_role("tab", name="Chat").is_visible()
    assert page.get_by_role("tab", name="Create").count() == 0 or not page.get_by_role("tab", name="Create").is_visible()
    page.screenshot(path=tmp_path / "user-store.png")

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in to the GPT store").wait_for(timeout=10_000)
    assert "/signin" in page.url
    assert not [c for c in page.context.cookies() if c["name"] == "gptbuilder_session"]
    page.screenshot(path=tmp_path / "signed-out.png")
    page.goto(f"{store_url}/")  # and the store is closed again
    page.get_by_role("heading", name="Sign in to the GPT store").wait_for(timeout=10_000)


def test_a_builder_sees_the_create_tab(browser, store_url, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, store_url, BUILDER)
    assert _account(page).startswith("Signed in as builder")
    create = page.get_by_role("tab", name="Create")
    create.wait_for(timeout=10_000)
    create.click()
    page.get_by_label("Id (file name: gpts/<id>.yaml)").wait_for(timeout=10_000)
    page.screenshot(path=tmp_path / "builder-create.png")


def test_a_wrong_key_stays_on_the_sign_in_page(browser, store_url, tmp_path):
    page = browser.new_page()
    page.goto(f"{store_url}/")
    page.get_by_label("API key").fill("sk-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for(timeout=10_000)
    assert "not valid" in page.get_by_role("alert").inner_text()
    assert not page.context.cookies()
    page.screenshot(path=tmp_path / "wrong-key.png")
