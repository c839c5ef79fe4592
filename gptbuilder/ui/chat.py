"""The chat view: a GPT's description, starters, streamed answers, approvals, feedback, history and rating."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import gradio as gr

from ..access import Access
from ..errors import GPTBuilderError
from ..history import History
from ..store import Store
from .conversation import ChatTurns, Snapshot, pending_asks
from .people import Identify, person
from .render import avatar_text, chat_messages, esc

MAX_STARTERS = 12
STARS = [(f"{n} ★", n) for n in range(1, 6)]
CONCURRENCY = 8


class _StreamOptions(TypedDict):
    """The event options every streamed answer shares (typed so each listener's keywords are checked)."""

    concurrency_limit: int
    show_progress: Literal["full", "minimal", "hidden"]


@dataclass
class ChatView:
    """The chat view's components other views talk to."""

    gpt: gr.Dropdown
    owner: gr.State


def gpt_choices(store: Store) -> list[tuple[str, str]]:
    """Dropdown choices for every valid GPT: (avatar and name, id)."""
    return [(f"{avatar_text(g.spec.avatar, g.spec.name)} {g.spec.name}", g.id) for g in store.specs()]


def header_html(store: Store, gpt_id: str | None) -> str:
    """The GPT's avatar, name, description and author, escaped; a clear message when it cannot be used."""
    if not gpt_id:
        return '<div class="gb-header"><p>Pick a GPT in <b>Discover</b> or above.</p></div>'
    try:
        spec = store.get(gpt_id).spec
    except GPTBuilderError as exc:
        return f'<div class="gb-header gb-error" role="alert"><b>{esc(gpt_id)}</b> cannot be used right now:<pre>{esc(exc)}</pre></div>'
    author = f'<div class="gb-meta">by {esc(spec.author)}</div>' if spec.author else ""
    return (
        f'<div class="gb-header"><div class="gb-avatar" aria-hidden="true">{esc(avatar_text(spec.avatar, spec.name))}</div>'
        f'<div><h2 class="gb-name">{esc(spec.name)}</h2><p class="gb-desc">{esc(spec.description)}</p>{author}</div></div>'
    )


def build_chat(store: Store, history: History, *, identify: Identify, access: Access) -> ChatView:
    """Lay out the chat view inside the current Blocks and wire its events.

    Each handler asks ``identify`` who sent the request: a key's conversations are the key's, and a
    conversation named by id opens only for its owner (or, read-only in practice, the GPT's owner and admins).
    """
    turns = ChatTurns(store, history)
    owner = gr.State("")
    conversation = gr.State(None)
    shown_ids = gr.State([])
    feedback_target = gr.State(None)

    with gr.Row(elem_classes="gb-chat-top"):
        gpt = gr.Dropdown(label="GPT", choices=gpt_choices(store), value=None, allow_custom_value=True, scale=3, min_width=260)
        rating = gr.Radio(label="Rate this GPT", choices=STARS, value=None, scale=2, min_width=260, elem_classes="gb-stars")
    header = gr.HTML(header_html(store, None), elem_classes="gb-header-wrap")
    with gr.Row(elem_classes="gb-starters"):
        starters = [gr.Button("", visible=False, size="sm", variant="secondary") for _ in range(MAX_STARTERS)]
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=220, elem_classes="gb-history"):
            new_chat = gr.Button("＋ New chat", size="sm")
            conversations = gr.Radio(label="Conversations", choices=[], value=None, elem_classes="gb-conversations")
            with gr.Accordion("Rename or delete", open=False):
                new_title = gr.Textbox(label="New title", max_lines=1)
                with gr.Row():
                    rename = gr.Button("Rename", size="sm")
                    delete = gr.Button("Delete", size="sm", variant="stop")
        with gr.Column(scale=4, min_width=300):
            chatbot = gr.Chatbot(
                label="Chat",
                height="62vh",
                min_height=360,
                buttons=["copy", "copy_all"],
                feedback_options=("Like", "Dislike"),
                elem_classes="gb-chatbot",
                placeholder="Ask anything, or pick a starter above.",
            )
            with gr.Row(visible=False, elem_classes="gb-approval") as approval_row:
                approval_text = gr.Markdown()
                approve = gr.Button("Approve", variant="primary", size="sm")
                deny = gr.Button("Deny", variant="stop", size="sm")
            with gr.Row(visible=False, elem_classes="gb-feedback") as comment_row:
                comment = gr.Textbox(label="Tell us more (optional)", max_lines=3, scale=4)
                send_comment = gr.Button("Send feedback", size="sm", scale=1)
            with gr.Row(elem_classes="gb-input"):
                message = gr.Textbox(
                    show_label=False, placeholder="Message the GPT…",
                    lines=1, max_lines=6, scale=8, min_width=160, autofocus=False,
                )
                send = gr.Button("Send", variant="primary", scale=0, min_width=64)
                stop = gr.Button("Stop", variant="stop", scale=0, min_width=64)
            with gr.Row(equal_height=True):
                regenerate = gr.Button("↻ Regenerate", size="sm", scale=0, min_width=120)
                notice = gr.Markdown(elem_classes="gb-notice")

    def conversation_choices(gpt_id: str | None, who: str) -> list[tuple[str, str]]:
        if not gpt_id:
            return []
        rows = history.conversations(gpt_id, owner=who)
        return [(f"{c.title or 'Untitled'} · {c.updated_at:%b %d %H:%M}", c.id) for c in rows]

    def approval_updates(asks: list[dict[str, Any]]) -> tuple[Any, str]:
        if not asks:
            return gr.update(visible=False), ""
        calls = (f"{a['name']}({', '.join(f'{k}={json.dumps(v, ensure_ascii=False)}' for k, v in a['arguments'].items())})" for a in asks)
        names = ", ".join(f"`{call.replace('`', chr(39))}`" for call in calls)
        return gr.update(visible=True), f"**Approval needed** — {names} wants to run. Nothing runs unless you approve."

    def view(snapshot: Snapshot, who: str, gpt_id: str) -> tuple:
        shown, ids = chat_messages(snapshot.messages)
        row, text = approval_updates(snapshot.asks)
        radio = gr.update(choices=conversation_choices(gpt_id, who), value=snapshot.conversation_id) if snapshot.done else gr.update()
        return shown, snapshot.conversation_id, ids, row, text, radio, ""

    stream_outputs = [chatbot, conversation, shown_ids, approval_row, approval_text, conversations, notice]

    def stream(snapshots: Iterator[Snapshot], who: str, gpt_id: str) -> Iterator[tuple]:
        try:
            for snapshot in snapshots:
                yield view(snapshot, who, gpt_id)
        except GPTBuilderError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def respond(text: str, gpt_id: str | None, conv: str | None, who: str, request: gr.Request) -> Iterator[tuple]:
        if not gpt_id:
            raise gr.Error("Pick a GPT first.", print_exception=False)
        who = person(identify, request, who).owner
        yield from stream(turns.send(gpt_id, conv, text or "", owner=who), who, gpt_id)

    def decide(approved: bool, gpt_id: str | None, conv: str | None, who: str) -> Iterator[tuple]:
        if not gpt_id or not conv:
            raise gr.Error("There is nothing waiting for approval.", print_exception=False)
        try:
            turns.check_own(conv, who)
        except GPTBuilderError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        asks = pending_asks(history.messages(conv))
        if not asks:
            raise gr.Error("There is nothing waiting for approval.", print_exception=False)
        decisions = {a["id"]: approved for a in asks}
        word = "approved" if approved else "denied"
        text = "(" + "; ".join(f"{word} {a['name']}" for a in asks) + ")"
        yield from stream(turns.send(gpt_id, conv, text, owner=who, approvals=decisions), who, gpt_id)

    def again(gpt_id: str | None, conv: str | None, who: str, request: gr.Request) -> Iterator[tuple]:
        if not gpt_id or not conv:
            raise gr.Error("Nothing to regenerate yet: send a message first.", print_exception=False)
        who = person(identify, request, who).owner
        yield from stream(turns.regenerate(gpt_id, conv, owner=who), who, gpt_id)

    def open_gpt(gpt_id: str | None, who: str, request: gr.Request) -> tuple:
        who = person(identify, request, who).owner
        starter_texts: list[str] = []
        rated = history.rating(gpt_id, owner=who) if gpt_id else None
        if gpt_id:
            with contextlib.suppress(GPTBuilderError):
                starter_texts = list(store.get(gpt_id).spec.conversation_starters)
        buttons = [
            gr.update(value=starter_texts[i], visible=True) if i < len(starter_texts) else gr.update(value="", visible=False)
            for i in range(MAX_STARTERS)
        ]
        radio = gr.update(choices=conversation_choices(gpt_id, who), value=None)
        return (header_html(store, gpt_id), gr.update(value=rated), *buttons, [], None, [], radio, gr.update(visible=False), "")

    def resume(conv: str | None, gpt_id: str | None, who: str, request: gr.Request) -> tuple:
        if not conv:
            return gr.update(), gr.update(), gr.update(), gr.update(visible=False), ""
        try:
            found = history.get(conv)
            access.check_conversation(person(identify, request, who), found.gpt_id, found.owner)
        except GPTBuilderError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        stored = history.messages(conv)
        shown, ids = chat_messages(stored)
        row, text = approval_updates(pending_asks(stored))
        return shown, found.id, ids, row, text

    def rename_conversation(conv: str | None, title: str, gpt_id: str | None, who: str, request: gr.Request) -> tuple:
        if not conv:
            raise gr.Error("Pick a conversation to rename.", print_exception=False)
        who = person(identify, request, who).owner
        try:
            turns.check_own(conv, who)
            history.rename(conv, title)
        except GPTBuilderError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return gr.update(choices=conversation_choices(gpt_id, who), value=conv), ""

    def delete_conversation(conv: str | None, gpt_id: str | None, who: str, request: gr.Request) -> tuple:
        if not conv:
            raise gr.Error("Pick a conversation to delete.", print_exception=False)
        who = person(identify, request, who).owner
        try:
            turns.check_own(conv, who)
            history.delete(conv)
        except GPTBuilderError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return gr.update(choices=conversation_choices(gpt_id, who), value=None), [], None, [], "Conversation deleted."

    def rate(gpt_id: str | None, stars: int | None, who: str, request: gr.Request) -> str:
        if not gpt_id or stars is None:
            return ""
        who = person(identify, request, who).owner
        try:
            history.rate(gpt_id, int(stars), owner=who)
        except GPTBuilderError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return f"Thanks — you rated this GPT {int(stars)}/5."

    def liked(ids: list[int | None], data: gr.LikeData) -> tuple:
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        message_id = ids[index] if isinstance(index, int) and 0 <= index < len(ids) else None
        if message_id is None or data.liked is None:
            return None, gr.update(visible=False), ""
        value = 1 if data.liked is True or data.liked == "Like" else -1
        try:
            history.feedback(message_id, value)
        except GPTBuilderError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return (message_id, value), gr.update(visible=True), "Thanks for the feedback."

    def comment_on(target: tuple[int, int] | None, text: str) -> tuple:
        if not target:
            raise gr.Error("Give a thumbs up or down on an answer first.", print_exception=False)
        try:
            history.feedback(int(target[0]), int(target[1]), text or "")
        except GPTBuilderError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return None, gr.update(visible=False), "", "Feedback saved — thank you."

    chat_options: _StreamOptions = {"concurrency_limit": CONCURRENCY, "show_progress": "hidden"}
    submit = gr.on(
        [message.submit, send.click], respond, [message, gpt, conversation, owner], stream_outputs,
        api_name="chat", **chat_options,
    )
    submit.then(lambda: "", None, message, api_visibility="private", show_progress="hidden")
    starter_events = [
        button.click(respond, [button, gpt, conversation, owner], stream_outputs, api_visibility="private", **chat_options)
        for button in starters
    ]
    def approve_all(gpt_id: str | None, conv: str | None, who: str, request: gr.Request) -> Iterator[tuple]:
        yield from decide(True, gpt_id, conv, person(identify, request, who).owner)

    def deny_all(gpt_id: str | None, conv: str | None, who: str, request: gr.Request) -> Iterator[tuple]:
        yield from decide(False, gpt_id, conv, person(identify, request, who).owner)

    approve_event = approve.click(approve_all, [gpt, conversation, owner], stream_outputs, api_name="approve", **chat_options)
    deny_event = deny.click(deny_all, [gpt, conversation, owner], stream_outputs, api_name="deny", **chat_options)
    regen = gr.on([regenerate.click, chatbot.retry], again, [gpt, conversation, owner], stream_outputs,
                  api_name="regenerate", **chat_options)
    stop.click(None, None, None, cancels=[submit, regen, approve_event, deny_event, *starter_events], api_visibility="private")

    opened = [header, rating, *starters, chatbot, conversation, shown_ids, conversations, approval_row, notice]
    gpt.change(open_gpt, [gpt, owner], opened, api_name="open", show_progress="hidden")
    gr.on([new_chat.click, chatbot.clear], lambda: ([], None, [], gr.update(value=None), gr.update(visible=False), ""), None,
          [chatbot, conversation, shown_ids, conversations, approval_row, notice], api_name="new_chat")
    conversations.input(resume, [conversations, gpt, owner], [chatbot, conversation, shown_ids, approval_row, approval_text],
                        api_name="resume")
    rename.click(rename_conversation, [conversation, new_title, gpt, owner], [conversations, new_title], api_name="rename")
    delete.click(delete_conversation, [conversation, gpt, owner], [conversations, chatbot, conversation, shown_ids, notice],
                 api_name="delete")
    rating.input(rate, [gpt, rating, owner], notice, api_name="rate")
    chatbot.like(liked, [shown_ids], [feedback_target, comment_row, notice], api_visibility="private")
    send_comment.click(comment_on, [feedback_target, comment], [feedback_target, comment_row, comment, notice],
                       api_visibility="private")
    return ChatView(gpt=gpt, owner=owner)
