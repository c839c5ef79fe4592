"""Untrusted text made safe for the page: escaping, and chat messages for answers, sources and tool steps."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from ..server.sanitize import render as _widget_html

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")  # what formats text inside a line


def esc(text: Any) -> str:
    """Text for HTML: every tag, quote and entity shown as written."""
    return html.escape("" if text is None else str(text), quote=True)


def md_text(text: Any) -> str:
    """Text for Markdown shown literally: HTML escaped, Markdown punctuation backslashed."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape("" if text is None else str(text), quote=False))


def is_image_path(avatar: str | None) -> bool:
    """Whether a spec's avatar names an image file rather than being an emoji or a letter."""
    return bool(avatar and re.search(r"\.(png|jpe?g|gif|webp|svg)$", avatar, re.IGNORECASE))


def avatar_text(avatar: str | None, name: str) -> str:
    """What a card shows as the avatar: the emoji, else the name's first letter."""
    if avatar and not is_image_path(avatar) and len(avatar) <= 8:
        return avatar
    return (name.strip()[:1] or "?").upper()


def where(locator: dict[str, Any]) -> str:
    """A citation's place in its file: page, headings, or record."""
    if locator.get("page"):
        return f"page {locator['page']}"
    if locator.get("headings"):
        return " > ".join(map(str, locator["headings"]))
    if locator.get("record") is not None:
        return f"record {locator['record']}"
    return ""


def sources_markdown(sources: list[dict[str, Any]]) -> str:
    """Numbered sources under an answer: file, where in it, and the start of the passage."""
    if not sources:
        return ""
    lines = ["\n\n**Sources**"]
    for source in sources:
        place = where(source.get("locator") or {})
        excerpt = " ".join(str(source.get("text", "")).split())[:160]
        lines.append(
            f"{source['number']}. `{str(source['source']).replace('`', '')}`"
            f"{f' — {esc(place)}' if place else ''}: {esc(excerpt)}"
        )
    return "\n".join(lines)


def _json_block(value: Any) -> str:
    return "```json\n" + json.dumps(value, ensure_ascii=False, indent=2).replace("```", "`\u200b``") + "\n```"


def text_block(text: str) -> str:
    """Text shown verbatim in a fenced block (a fence inside cannot close it)."""
    return _text_block(text)


def _text_block(text: str) -> str:
    return "```\n" + text.replace("```", "`\u200b``") + "\n```"


def step_messages(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls as collapsible steps: one per call with its arguments and result; approvals asked."""
    out: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for step in steps:
        kind = step.get("type")
        if kind in ("tool_call", "confirmation_request"):
            title = f"🔧 {step['name']}" if kind == "tool_call" else f"⏸ {step['name']} needs your approval"
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "**Arguments**\n" + _json_block(step.get("arguments", {})),
                "metadata": {"title": title, "status": "done"},
            }
            by_id[step["id"]] = message
            out.append(message)
        elif kind == "tool_result":
            label = "**Failed**" if step.get("error") else "**Result**"
            block = f"\n\n{label}\n" + _text_block(str(step.get("content", "")))
            called = by_id.get(step["id"])
            if called is None:
                called = {"role": "assistant", "content": "", "metadata": {"title": f"🔧 {step['name']}", "status": "done"}}
                out.append(called)
            called["content"] += block
            if step.get("error"):
                called["metadata"]["title"] += " (failed)"
    return out


def answer_content(text: str, extra: dict[str, Any]) -> str:
    """An answer's visible text: curated mark, the answer, its numbered sources, an error note."""
    parts = []
    if extra.get("curated"):
        parts.append("✅ *Curated answer*\n\n")
    parts.append(text)
    parts.append(grounding_note(extra.get("grounding")))
    parts.append(sources_markdown(extra.get("sources") or []))
    if extra.get("error"):
        parts.append(f"\n\n⚠️ *The answer stopped: {md_text(extra['error'])}*")
    elif extra.get("stopped"):
        parts.append("\n\n⏹ *Stopped.*")
    elif extra.get("streaming"):  # written while it streamed and never finished: the server stopped meanwhile
        parts.append("\n\n⚠️ *This answer did not finish.*")
    return "".join(parts)


def grounding_note(grounding: dict[str, Any] | None) -> str:
    """The badge under an answer checked against its sources, saying what the check changed."""
    if not grounding:
        return ""
    if grounding.get("mode") == "extractive":
        return "\n\n📑 *Quoted from the sources*"
    changes = grounding.get("changes") or []
    if not changes:
        return "\n\n✔️ *Checked against the sources*"
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.get("action", "changed")] = counts.get(change.get("action", "changed"), 0) + 1
    said = ", ".join(f"{n} {action}" for action, n in counts.items())
    return f"\n\n🔎 *Checked against the sources: sentences not supported by them {said}*"


def answer_html(markdown: str) -> str:
    """An answer as the chat shows it, under the widget's policy: no raw HTML, no images, no forms.

    Model output is untrusted (a prompt-injected page can steer it): a Markdown image would make the
    browser send data to any host, and Gradio's own sanitizer keeps ``<img>`` and ``<form>``. The
    HTML is on one line (newlines as ``&#10;``, the same text inside ``<pre>``) so the Chatbot's
    Markdown pass takes it as one HTML block and adds nothing.
    """
    return _widget_html(markdown).strip().replace("\n", "&#10;")


def chat_messages(stored: list[Any]) -> tuple[list[dict[str, Any]], list[int | None]]:
    """Chatbot messages for stored ones, and for each shown message the stored answer id it belongs to."""
    shown: list[dict[str, Any]] = []
    ids: list[int | None] = []
    for message in stored:
        extra = message.extra or {}
        if message.role == "user":
            for step in step_messages(extra.get("tool_results") or []):
                shown.append(step)
                ids.append(None)
            shown.append({"role": "user", "content": message.content})
            ids.append(None)
        elif message.role == "assistant":
            for step in step_messages(extra.get("steps") or []):
                shown.append(step)
                ids.append(None)
            content = answer_html(answer_content(message.content, extra))
            if content or not extra.get("steps"):
                shown.append({"role": "assistant", "content": content or "…"})
                ids.append(message.id)
    return shown, ids
