"""A chat page over every GPT in the store: pick one, read its starters, chat with streaming."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import gradio as gr

from ..errors import GPTBuilderError, InputError
from ..events import Citation, TextDelta
from ..store import Store


def build_ui(store: Store) -> gr.Blocks:
    """The chat page for ``store``; the GPT list is read when the page loads, so new specs appear."""
    with gr.Blocks(title="gptbuilder") as demo:
        gr.Markdown("## gptbuilder")
        # custom values let API callers name GPTs added after the page was built; the store validates them
        gpt = gr.Dropdown(label="GPT", choices=_choices(store), interactive=True, allow_custom_value=True)
        about = gr.Markdown()

        def refresh(current: str | None = None) -> tuple[dict[str, Any], str]:
            choices = _choices(store)
            ids = [gpt_id for _, gpt_id in choices]
            chosen = current if current in ids else (ids[0] if ids else None)
            return gr.update(choices=choices, value=chosen), describe(chosen)

        def describe(gpt_id: str | None) -> str:
            if not gpt_id:
                return f"No valid GPTs in `{store.gpts_dir}` — run `gptbuilder validate`."
            try:
                spec = store.get(gpt_id).spec
            except GPTBuilderError as exc:
                return f"**{html.escape(gpt_id)}** cannot be used: {html.escape(str(exc))}"
            starters = "".join(f"\n- {html.escape(s)}" for s in spec.conversation_starters)
            text = f"**{html.escape(spec.name)}** — {html.escape(spec.description)}"
            return text + (f"\n\nTry:{starters}" if starters else "")

        def respond(message: Any, history: list[dict[str, Any]], gpt_id: str | None) -> Iterator[str]:
            if not gpt_id:
                raise gr.Error("Pick a GPT first.")
            answer = ""
            try:
                agent = store.agent(gpt_id)
                conversation = [*map(_plain, history), {"role": "user", "content": _text(message)}]
                sources: list[Citation] = []
                for event in agent.stream(conversation):
                    if isinstance(event, TextDelta):
                        answer += event.text
                        yield answer
                    elif isinstance(event, Citation):
                        sources.append(event)
                if sources:
                    yield answer + _sources_markdown(sources)
            except InputError as exc:
                raise gr.Error(str(exc)) from None
            except GPTBuilderError as exc:
                if not answer:
                    raise gr.Error(str(exc)) from None
                yield f"{answer}\n\n⚠️ *The answer stopped: {html.escape(str(exc))}*"

        gr.ChatInterface(respond, additional_inputs=[gpt], api_name="chat", fill_height=False)
        gpt.change(describe, inputs=gpt, outputs=about, api_name=False)
        demo.load(refresh, inputs=gpt, outputs=[gpt, about], api_name=False)
    return demo


def _sources_markdown(sources: list[Citation]) -> str:
    """Numbered sources under an answer: file, where in it, and the start of the passage."""
    lines = ["\n\n**Sources**"]
    for source in sources:
        where = source.locator.get("page") and f"page {source.locator['page']}" or " > ".join(source.locator.get("headings", []))
        excerpt = " ".join(source.text.split())[:160]
        lines.append(f"{source.number}. `{source.source}`{f' — {html.escape(where)}' if where else ''}: {html.escape(excerpt)}")
    return "\n".join(lines)


def _choices(store: Store) -> list[tuple[str, str]]:
    return [(f"{s.spec.avatar or ''} {s.spec.name}".strip(), s.id) for s in store.specs()]


def _text(content: Any) -> str:
    """Gradio 6 may send a message's content as a list of parts; keep the text."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    if isinstance(content, list):
        return "".join(_text(part) for part in content)
    return ""


def _plain(message: dict[str, Any]) -> dict[str, str]:
    return {"role": message["role"], "content": _text(message.get("content"))}
