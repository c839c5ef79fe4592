"""The store in a real headless Chromium: open a GPT from its card, chat, see the streamed answer and its sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from gptbuilder.db import Database
from gptbuilder.history import FeedbackRow

pytestmark = pytest.mark.browser  # needs Chromium: skipped with the install hint without one, mandatory in .ci/run
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]
RETURNS = "# Returns\n\nShoes can be returned within 30 days of delivery for a full refund.\n"
# Records every text the last answer shows, so the test can tell a streamed answer from one that appeared at once.
WATCH = """() => {
  window.__answers = [];
  const seen = () => {
    const bots = document.querySelectorAll('.gb-chatbot .bot, .gb-chatbot [data-testid="bot"]');
    const text = bots.length ? bots[bots.length - 1].innerText : '';
    if (text && window.__answers[window.__answers.length - 1] !== text) window.__answers.push(text);
  };
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        yield chromium
        chromium.close()


def _knowledge(gpts_dir: Path) -> None:
    (gpts_dir / "knowledge").mkdir(exist_ok=True)
    (gpts_dir / "knowledge" / "returns.md").write_text(RETURNS, encoding="utf-8")


def _open_and_ask(page, url: str, card: str, question: str) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(url)
    button = page.get_by_role("button", name=f"Chat with {card}")
    button.wait_for(timeout=30_000)
    search = page.get_by_label("Search")
    search.fill("no-gpt-is-called-this")
    page.get_by_text("No GPTs match.").wait_for(timeout=10_000)
    search.fill("")
    button.wait_for(timeout=10_000)
    button.focus()
    page.keyboard.press("Enter")  # cards open from the keyboard
    box = page.get_by_placeholder("Message the GPT…")
    box.wait_for(timeout=10_000)
    page.evaluate(WATCH)
    box.fill(question)
    box.press("Enter")
    assert not dialogs, f"a script in the page ran: {dialogs}"


def test_browser_chat_streams_an_answer_with_a_citation(browser, write_spec, gpts_dir, launch, tmp_path):
    _knowledge(gpts_dir)
    write_spec("acme", "name: Acme <script>alert('name')</script>\ndescription: <img src=x onerror=alert('desc')> returns\n"
                       "category: customer-service\ninstructions: Answer from the sources.\n"
                       "conversation_starters: ['How do returns work?']\n"
                       "model: {provider: fake, options: {replies: ['You can return shoes within 30 days of delivery [1].']}}\n"
                       "knowledge: {files: [knowledge/*.md], embedding_model: fake}\n")
    demo, _ = launch()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _open_and_ask(page, demo.local_url, "Acme <script>alert('name')</script>", "How long do I have to return shoes?")
    page.get_by_text("knowledge/returns.md").wait_for(timeout=30_000)
    answer = page.locator(".gb-chatbot").inner_text()
    assert "You can return shoes within 30 days of delivery [1]." in answer and "Sources" in answer
    assert "Shoes can be returned within 30 days" in answer
    streamed = page.evaluate("window.__answers")
    assert len(streamed) >= 2 and streamed[0] != streamed[-1], f"the answer did not stream: {streamed}"
    header = page.locator(".gb-header").inner_text()
    assert "<script>alert('name')</script>" in header and "<img src=x onerror=alert('desc')>" in header
    page.screenshot(path=str(tmp_path / "store-chat.png"), full_page=True)
    assert (tmp_path / "store-chat.png").stat().st_size > 10_000


def test_browser_starter_feedback_at_phone_width_in_dark_mode(browser, write_spec, launch, tmp_path):
    write_spec("parrot", "name: Parrot\ndescription: Repeats you.\ninstructions: x\n"
                         "conversation_starters: ['Say hi']\nmodel: {provider: fake}\n")
    demo, _ = launch()
    page = browser.new_page(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page.goto(demo.local_url + "?gpt=parrot&__theme=dark")  # a link straight to a GPT
    page.get_by_role("button", name="Say hi").click(timeout=30_000)
    page.get_by_text("You said: Say hi").wait_for(timeout=30_000)
    page.get_by_role("button", name="Dislike").click()
    page.get_by_label("Tell us more (optional)").fill("Too short")
    page.get_by_role("button", name="Send feedback").click()
    page.get_by_text("Feedback saved").wait_for(timeout=10_000)
    with Database.for_data_dir(tmp_path / "data").session() as session:
        assert [(f.value, f.comment) for f in session.scalars(select(FeedbackRow))] == [(-1, "Too short")]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"
    page.screenshot(path=str(tmp_path / "store-phone.png"), full_page=True)


@pytest.mark.slow
def test_browser_real_model_and_embeddings_answer_with_sources(browser, write_spec, gpts_dir, launch, tmp_path):
    _knowledge(gpts_dir)
    write_spec("shoes", "name: Shoe Returns\ndescription: Returns policy.\ninstructions: Answer from the sources in one sentence.\n"
                        "model: {temperature: 0, max_tokens: 40}\nknowledge: {files: [knowledge/*.md]}\n")
    demo, _ = launch()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _open_and_ask(page, demo.local_url, "Shoe Returns", "How many days do I have to return shoes?")
    page.get_by_text("knowledge/returns.md").wait_for(timeout=120_000)
    assert "Shoes can be returned within 30 days" in page.locator(".gb-chatbot").inner_text()
    page.screenshot(path=str(tmp_path / "store-real.png"), full_page=True)


SHIPPED = Path(__file__).resolve().parents[2] / "gpts"


@pytest.mark.slow
def test_browser_every_shipped_gpt_answers_its_first_starter(browser, launch, tmp_path):
    """The store as a newcomer sees it: each shipped GPT, its first starter clicked, answered on the real model."""
    from gptbuilder.store import Store

    store = Store(SHIPPED, data_dir=tmp_path / "data")
    demo, _ = launch(store)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    for loaded in store.specs():
        starter = loaded.spec.conversation_starters[0]
        page.goto(f"{demo.local_url}?gpt={loaded.id}")
        page.get_by_role("button", name=starter).click(timeout=30_000)
        chat = page.locator(".gb-chatbot")
        chat.get_by_text(starter).first.wait_for(timeout=30_000)
        answer = _settled_answer(page)
        assert answer.strip() and "stopped" not in answer.lower() and "error" not in answer.lower(), (loaded.id, answer)
        if loaded.spec.knowledge and "Curated answer" not in answer:
            assert "Sources" in answer, (loaded.id, answer)
        page.screenshot(path=str(tmp_path / f"starter-{loaded.id}.png"), full_page=True)


def _settled_answer(page, timeout_s: float = 180) -> str:
    """The last answer's text once it has stopped changing for three seconds."""
    import time

    bots = page.locator(".gb-chatbot .bot, .gb-chatbot [data-testid='bot']")
    deadline = time.monotonic() + timeout_s
    last, steady = "", 0
    while time.monotonic() < deadline:
        text = bots.last.inner_text() if bots.count() else ""
        steady = steady + 1 if text.strip() and text == last else 0
        if steady >= 3:
            return text
        last = text
        page.wait_for_timeout(1000)
    raise AssertionError(f"no settled answer within {timeout_s} s: {last!r}")
