"""The whole store as one `gr.Blocks`: Discover, Chat and Create tabs over a Store and its History."""

from __future__ import annotations

import functools
import uuid
from pathlib import Path
from typing import Any

import gradio as gr

from .. import builder as specs
from ..access import Access, GPTOwners, Identity
from ..db import Database
from ..history import History
from ..settings import Settings
from ..spec import CATEGORIES
from ..store import Store
from . import discover
from .builder import build_builder, spec_ids
from .chat import build_chat, gpt_choices
from .people import Identify, local_user, person, ui_call
from .render import esc


@functools.cache
def store_css() -> str:
    """The store's stylesheet (theme.css); build_ui embeds it, so any way of mounting gets it."""
    return Path(__file__).with_name("theme.css").read_text(encoding="utf-8")


def store_theme() -> gr.themes.Base:
    """The store's theme (pass it to `launch`/`mount_gradio_app` as `theme=`; light and dark both work)."""
    return gr.themes.Soft(primary_hue="indigo", radius_size="md")


def account_html(who: Identity) -> str:
    """Who is signed in, with a sign-out button; nothing on a store without keys."""
    if not who.keyed:
        return ""
    return (
        f'<div class="gb-account">Signed in as <b>{esc(who.label)}</b>'
        '<form method="post" action="/signout"><button type="submit">Sign out</button></form></div>'
    )


def build_ui(
    store: Store,
    *,
    history: History | None = None,
    pass_rates: discover.PassRateLookup | None = None,
    identify: Identify = local_user,
) -> gr.Blocks:
    """The store for ``store``: discover, chat and build GPTs; specs added or saved appear without a restart.

    ``history`` defaults to the database of the store's data folder. ``pass_rates`` is the hook for
    `gptbuilder test` results shown on cards (GPT id → pass rate 0..1, or None); by default the results
    `gptbuilder test` stored under the data folder for each GPT's current spec version. ``identify``
    says who sent a request: by default the machine's own user, an admin (`python app.py` on loopback);
    `serve` passes the caller its keys authenticated, so each page shows and allows only what their role may.
    """
    data_dir = Path(store.data_dir or Settings.from_env().data_dir)
    if history is None:
        history = History(Database.for_data_dir(data_dir))
    if pass_rates is None:
        pass_rates = discover.stored_pass_rates(store, data_dir)
    access = Access(store.gpts_dir, GPTOwners(history.db))
    with gr.Blocks(title="gptbuilder — GPT store", fill_width=False) as demo:
        gr.HTML(f"<style>{store_css()}</style>", padding=False, js_on_load=None)  # styled however it is mounted
        with gr.Row(elem_classes="gb-top"):
            gr.HTML(
                '<div class="gb-title"><h1>gptbuilder store</h1><p>Discover, try, create and rate GPTs.</p></div>',
                js_on_load=None,
            )
            account = gr.HTML("", js_on_load=None, elem_classes="gb-account-wrap")
        browser_owner = gr.BrowserState("", storage_key="gptbuilder-owner")
        refresh = gr.State(0)
        with gr.Tabs(selected="discover") as tabs:
            with gr.Tab("Discover", id="discover") as discover_tab:
                with gr.Row():
                    query = gr.Textbox(label="Search", placeholder="Search names, descriptions and tags", scale=3, max_lines=1)
                    category = gr.Dropdown(
                        label="Category",
                        choices=[("All categories", discover.ALL)] + [(s.title, s.id) for s in store.catalog.categories],
                        value=discover.ALL, scale=1,
                    )
                shelves_area = gr.Column()
            with gr.Tab("Chat", id="chat"):
                chat = build_chat(store, history, identify=identify, access=access)
            with gr.Tab("Create", id="create", visible=False) as create_tab:  # shown to builders and admins on load
                creator = build_builder(store, data_dir / "preview", identify=identify, access=access)

        def open_card(gpt_id: str) -> tuple:
            return gpt_id, gr.Tabs(selected="chat")

        with shelves_area:

            @gr.render(inputs=[query, category, refresh], triggers=[query.change, category.change, refresh.change, demo.load])
            def render_shelves(text: str, chosen: str, _refresh: int) -> None:
                found = discover.search(discover.cards(store, history, pass_rates=pass_rates), text or "", chosen)
                if not found:
                    gr.Markdown("No GPTs match. Create one in the **Create** tab.")
                for title, on_shelf in discover.shelves(found, store):
                    gr.Markdown(f"### {esc(title)}", elem_classes="gb-shelf-title")
                    with gr.Row(elem_classes="gb-shelf"):
                        for card in on_shelf:
                            with gr.Column(elem_classes="gb-card", min_width=240, key=f"card-{card.id}"):
                                gr.HTML(discover.card_html(card), js_on_load=None, key=f"html-{card.id}")
                                button = gr.Button(f"Chat with {card.name}", size="sm", variant="primary",
                                                   key=f"open-{card.id}", elem_classes="gb-open")
                                button.click(lambda gid=card.id: open_card(gid), None, [chat.gpt, tabs], api_visibility="private")
                broken = len(store.errors())
                if broken:
                    gr.Markdown(f"{broken} spec{'s' if broken != 1 else ''} failed to load and {'are' if broken != 1 else 'is'} "
                                "hidden — fix in **Create** or run `gptbuilder validate`.", elem_classes="gb-notice")

        def start(owner: str, request: gr.Request) -> tuple:
            who = person(identify, request, owner or uuid.uuid4().hex)
            wanted = (request.query_params.get("gpt") if request else None) or None
            ids = [gid for _, gid in gpt_choices(store)]
            choices = gr.update(choices=gpt_choices(store), value=wanted if wanted in ids else None)
            tab = gr.Tabs(selected="chat") if wanted in ids else gr.Tabs()
            editable = gr.update(choices=access.editable(who, spec_ids(store)))
            browser = gr.update() if who.keyed else who.owner  # a key's chats are the key's, whichever browser
            return browser, who.owner, choices, tab, editable, gr.Tab(visible=who.can_build), account_html(who)

        demo.load(start, [browser_owner], [browser_owner, chat.owner, chat.gpt, tabs, creator.editing, create_tab, account],
                  api_visibility="private")
        discover_tab.select(lambda n: n + 1, refresh, refresh, api_visibility="private", show_progress="hidden")
        creator.saved.change(
            lambda n, current: (n + 1, gr.update(choices=gpt_choices(store), value=current)),
            [refresh, chat.gpt], [refresh, chat.gpt], api_visibility="private",
        )

        _api(store, history, pass_rates, identify, access)
    return demo


def _api(
    store: Store, history: History, pass_rates: discover.PassRateLookup | None, identify: Identify, access: Access
) -> None:
    """Read and write endpoints for scripts and tests (`gradio_client`); the same calls the views make."""

    def gpts(query: str = "", category: str = discover.ALL) -> list[dict[str, Any]]:
        """The GPT cards matching a search and a category, featured first."""
        if category not in (discover.ALL, *CATEGORIES):
            raise gr.Error(f"unknown category {category!r}; use one of: {', '.join((discover.ALL, *CATEGORIES))}")
        return [c.to_dict() for c in discover.search(discover.cards(store, history, pass_rates=pass_rates), query, category)]

    def gpt(gpt_id: str) -> dict[str, Any]:
        """One GPT as its card shows it, with its conversation starters."""
        loaded = ui_call(store.get, gpt_id)
        card = next((c for c in discover.cards(store, history, pass_rates=pass_rates) if c.id == gpt_id), None)
        return {**(card.to_dict() if card else {"id": gpt_id}), "conversation_starters": list(loaded.spec.conversation_starters)}

    def conversations(gpt_id: str, owner: str = "", request: gr.Request | None = None) -> list[dict[str, Any]]:
        """Your conversations with a GPT, most recent first; its owner or an admin may name another ``owner`` ("*": all)."""
        who = identify(request)
        mine = who.owner if who.keyed else ""  # without keys, API clients' conversations have no owner
        if owner not in ("", mine) and not access.sees_all_conversations(who, gpt_id):
            raise gr.Error("only the GPT's owner or an admin may list other people's conversations", print_exception=False)
        chosen = None if owner == "*" else (owner or mine)
        return [
            {"id": c.id, "title": c.title, "owner": c.owner, "updated_at": c.updated_at.isoformat()}
            for c in history.conversations(gpt_id, owner=chosen)
        ]

    def messages(conversation_id: str, request: gr.Request | None = None) -> list[dict[str, Any]]:
        """A conversation's stored messages, oldest first (yours, or any with a GPT you own as its owner or an admin)."""
        found = ui_call(history.get, conversation_id)
        ui_call(access.check_conversation, identify(request), found.gpt_id, found.owner)
        return [{"id": m.id, "role": m.role, "content": m.content, "extra": m.extra} for m in ui_call(history.messages, conversation_id)]

    def feedback(message_id: int, value: int, comment: str = "", request: gr.Request | None = None) -> str:
        """Thumbs up (1) or down (-1) on an answer in one of your conversations, with an optional comment."""
        found = ui_call(history.conversation_of, int(message_id))
        who = identify(request)
        if found.owner != (who.owner if who.keyed else "") and not who.is_admin:
            raise gr.Error("you can only rate answers in your own conversations", print_exception=False)
        ui_call(history.feedback, int(message_id), int(value), comment)
        return "ok"

    def validate_spec(gpt_id: str, text: str, request: gr.Request | None = None) -> list[str]:
        """Every problem of a spec text, as `gptbuilder validate` prints them; empty when valid (builders and admins)."""
        ui_call(access.require_builder, identify(request))
        return [str(p) for p in specs.validate(gpt_id, text, store.gpts_dir)]

    def save_spec(gpt_id: str, text: str, loaded_fingerprint: str = "", request: gr.Request | None = None) -> dict[str, Any]:
        """Validate and save a spec atomically; the problems when it is refused (the file is then untouched).

        Builders save new GPTs (which become theirs) and their own; admins any.
        """
        from ..errors import SpecError, StorageError

        ui_call(access.claim_for_edit, identify(request), gpt_id)
        try:
            result = store.save(gpt_id, text, loaded_fingerprint=loaded_fingerprint or None)
        except SpecError as exc:
            return {"saved": False, "problems": [str(p) for p in exc.problems]}
        except StorageError as exc:
            return {"saved": False, "problems": [str(exc)]}
        return {"saved": True, "path": result.path.name, "fingerprint": result.fingerprint, "warning": result.warning}

    for fn in (gpts, gpt, conversations, messages, feedback, validate_spec, save_spec):
        gr.api(fn, api_name=fn.__name__)
