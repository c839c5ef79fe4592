"""The builder view: a form for every spec field beside a live YAML view, a preview chat, save and fork."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from .. import builder as specs
from ..access import Access, Identity
from ..errors import GPTBuilderError, InputError, SpecError, StorageError
from ..spec import BUILTIN_TOOLS, CATEGORIES
from ..store import Store
from .conversation import Answer
from .people import Identify, ui_call
from .render import answer_content, answer_html, esc, md_text, step_messages, text_block

PREVIEW_CACHE = 4


@dataclass
class BuilderView:
    """The builder's components other views talk to."""

    editing: gr.Dropdown
    saved: gr.State  # bumped on every save, so other views refresh


def accept_received_files_only(upload: gr.File) -> gr.File:
    """Make `upload` take only files uploaded to this server, never a server path a client names in a FileData.

    Gradio copies an input's ``FileData.path`` into its cache before the handler runs, and under
    ``mount_gradio_app`` (``serve``) it skips its own upload-folder check, so the check wraps that copy.
    The instance is patched, not subclassed: Gradio writes a ``.pyi`` beside any module defining a component.
    """
    copy, async_copy = upload.move_resource_to_block_cache, upload.async_move_resource_to_block_cache

    def received(path: str | Path | None) -> str | None:
        if path is None:
            return None
        try:
            return str(specs.received_upload(path, upload.GRADIO_CACHE))
        except InputError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    async def async_copy_received(path: str | Path | None) -> str | None:
        return await async_copy(received(path))

    upload.move_resource_to_block_cache = lambda path: copy(received(path))  # type: ignore[method-assign,assignment]
    upload.async_move_resource_to_block_cache = async_copy_received  # type: ignore[method-assign,assignment]
    return upload


def spec_ids(store: Store) -> list[str]:
    """Every spec file's id, valid or not (a broken spec can be fixed here)."""
    folder = store.gpts_dir
    return sorted(p.stem for p in folder.glob("*.yaml") if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _number(value: Any, kind: type) -> Any:
    if value in (None, ""):
        return None
    return kind(value)


def draft_from_form(base: dict[str, Any] | None, values: list[Any]) -> specs.Draft:
    """A Draft from the form's values on top of what the form does not show (kept from the opened file)."""
    (gpt_id, name, description, category, avatar, author, tags, instructions, starters,
     provider, model_name, temperature, max_tokens, tools, knowledge) = values
    base = base or {}
    model = dict(base.get("model") or {})
    model.update({"provider": provider or None, "name": (model_name or "").strip() or None,
                  "temperature": _number(temperature, float), "max_tokens": _number(max_tokens, int)})
    if model.get("provider") == "local" and all(v is None for k, v in model.items() if k != "provider"):
        model["provider"] = None  # the default: leave `model:` out
    return specs.Draft(
        gpt_id=(gpt_id or "").strip(),
        name=name or "",
        description=description or "",
        category=category or "qa",
        avatar=avatar or "",
        author=author or "",
        tags=[t.strip() for t in (tags or "").split(",") if t.strip()],
        instructions=instructions or "",
        conversation_starters=_lines(starters),
        model=model,
        knowledge_files=_lines(knowledge),
        builtin_tools=[t for t in BUILTIN_TOOLS if t in (tools or [])],
        other_tools=list(base.get("other_tools") or []),
        extra=dict(base.get("extra") or {}),
        knowledge_extra=dict(base.get("knowledge_extra") or {}),
    )


def form_values(draft: specs.Draft) -> list[Any]:
    """The form's values for a Draft (the inverse of draft_from_form)."""
    model = draft.model
    return [
        draft.gpt_id, draft.name, draft.description, draft.category, draft.avatar, draft.author,
        ", ".join(draft.tags), draft.instructions, "\n".join(draft.conversation_starters),
        model.get("provider") or "local", model.get("name") or "", model.get("temperature"), model.get("max_tokens"),
        list(draft.builtin_tools), "\n".join(draft.knowledge_files),
    ]


def hidden_fields(draft: specs.Draft) -> dict[str, Any]:
    """What the form does not show, kept so a save writes it back."""
    model = {k: v for k, v in draft.model.items() if k not in ("provider", "name", "temperature", "max_tokens")}
    return {"model": model, "other_tools": draft.other_tools, "extra": draft.extra, "knowledge_extra": draft.knowledge_extra}


def problems_markdown(problems: list[Any]) -> str:
    """Validation problems as a list (the messages of `gptbuilder validate`), or a ready note."""
    if not problems:
        return "✅ **Valid** — ready to save."
    return "❌ **Fix before saving:**\n\n" + text_block("\n".join(str(p) for p in problems))


def build_builder(store: Store, preview_data_dir: Path, *, identify: Identify, access: Access) -> BuilderView:
    """Lay out the builder inside the current Blocks and wire its events.

    Every handler checks the caller first: only builders and admins reach it, and a builder opens,
    saves, forks and uploads to only the GPTs they own (a new id becomes theirs when first saved or
    given a file). Hiding the tab is for the eye; these checks are the rule.
    """
    from ..models.registry import provider_names

    def builder(request: gr.Request | None) -> Identity:
        who = identify(request)
        ui_call(access.require_builder, who)
        return who

    def editor(request: gr.Request | None, chosen: str) -> Identity:
        who = identify(request)
        ui_call(access.claim_for_edit, who, chosen)
        return who

    def editable(who: Identity, value: str | None = None) -> dict[str, Any]:
        return gr.update(choices=access.editable(who, spec_ids(store)), value=value)

    base = gr.State({})
    loaded_fingerprint = gr.State(None)
    saved = gr.State(0)
    preview_turns = gr.State([])  # the preview's conversation as the model saw it (no sources or notes)
    previews: dict[str, Any] = {}
    previews_lock = threading.Lock()

    first = specs.Draft(gpt_id=specs.free_id("my-gpt", spec_ids(store)), name="My GPT", instructions="You are a helpful assistant.")
    start = form_values(first)
    with gr.Row(elem_classes="gb-builder-top"):
        # Filled on load with the GPTs this person may edit; any value reaches the handlers, which check it.
        editing = gr.Dropdown(label="Edit a GPT", choices=[], value=None, allow_custom_value=True, scale=3)
        new = gr.Button("＋ New GPT", scale=1)
        fork = gr.Button("⑂ Fork", scale=1)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            gpt_id = gr.Textbox(start[0], label="Id (file name: gpts/<id>.yaml)", max_lines=1, placeholder="my-gpt")
            name = gr.Textbox(start[1], label="Name", max_lines=1)
            description = gr.Textbox(label="Description", max_lines=2)
            with gr.Row():
                category = gr.Dropdown(label="Category", choices=list(CATEGORIES), value="qa", allow_custom_value=True)
                avatar = gr.Textbox(label="Avatar (emoji or image path)", max_lines=1)
                author = gr.Textbox(label="Author", max_lines=1)
            tags = gr.Textbox(label="Tags (comma separated)", max_lines=1)
            instructions = gr.Textbox(start[7], label="Instructions", lines=6, max_lines=20)
            starters = gr.Textbox(label="Conversation starters (one per line)", lines=3, max_lines=12)
            with gr.Accordion("Model", open=False):
                with gr.Row():
                    provider = gr.Dropdown(label="Provider", choices=provider_names(), value="local", allow_custom_value=True)
                    model_name = gr.Textbox(label="Model name (empty: the embedded default)", max_lines=1)
                with gr.Row():
                    temperature = gr.Number(label="Temperature", minimum=0, maximum=2, step=0.1, value=None)
                    max_tokens = gr.Number(label="Max tokens", minimum=1, precision=0, value=None)
            tools = gr.CheckboxGroup(label="Built-in tools", choices=list(BUILTIN_TOOLS))
            with gr.Accordion("Knowledge", open=True):
                knowledge = gr.Textbox(label="Knowledge files (globs relative to the GPTs folder, one per line)", lines=2)
                upload = accept_received_files_only(gr.File(
                    label=f"Upload knowledge (≤ {specs.MAX_UPLOAD_BYTES // 1_000_000} MB each)",
                    file_count="multiple", file_types=sorted(specs.upload_suffixes()),
                ))
        with gr.Column(scale=2, min_width=300):
            yaml_view = gr.Code(first.to_yaml(), label="YAML (live)", language="yaml", interactive=False, lines=18, max_lines=40)
            problems = gr.Markdown(elem_classes="gb-problems")
            save = gr.Button("💾 Save", variant="primary")
            status = gr.Markdown(elem_classes="gb-notice")
            with gr.Accordion("Edit the YAML directly (every field, comments kept; saves exactly this text)", open=False):
                raw = gr.Code(first.to_yaml(), label="Spec YAML", language="yaml", interactive=True, lines=14, max_lines=40)
                raw_problems = gr.Markdown(elem_classes="gb-problems")
                raw_save = gr.Button("💾 Save this YAML")
            with gr.Accordion("Preview (unsaved draft)", open=True):
                preview = gr.Chatbot(label="Preview", height=300, buttons=["copy"], feedback_options=None)
                with gr.Row():
                    preview_message = gr.Textbox(show_label=False, placeholder="Try the draft…", scale=4, max_lines=4)
                    preview_send = gr.Button("Send", scale=1, min_width=70)
    form: list[gr.Textbox | gr.Dropdown | gr.Number | gr.CheckboxGroup] = [
        gpt_id, name, description, category, avatar, author, tags, instructions, starters,
        provider, model_name, temperature, max_tokens, tools, knowledge,
    ]

    def show(request: gr.Request, base_fields: dict[str, Any], *values: Any) -> tuple[str, str]:
        builder(request)
        try:
            draft = draft_from_form(base_fields, list(values))
        except (TypeError, ValueError) as exc:
            return "", problems_markdown([f"form: {exc}"])
        text = draft.to_yaml()
        return text, problems_markdown(specs.validate(draft.gpt_id, text, store.gpts_dir))

    def load(draft: specs.Draft, fingerprint: str | None, note: str, written: str | None = None) -> tuple:
        text = draft.to_yaml()
        found = problems_markdown(specs.validate(draft.gpt_id, written or text, store.gpts_dir))
        return (*form_values(draft), hidden_fields(draft), fingerprint, text, found, note, [], written or text, found, [])

    loaded_outputs = [*form, base, loaded_fingerprint, yaml_view, problems, status, preview, raw, raw_problems, preview_turns]

    def open_existing(chosen: str | None, request: gr.Request) -> tuple:
        if not chosen:
            return tuple(gr.update() for _ in loaded_outputs)
        if not access.can_edit(identify(request), chosen):
            raise gr.Error(f"You cannot edit `{chosen}`: it is not one of your GPTs.", print_exception=False)
        path = store.gpts_dir / f"{chosen}.yaml"
        try:
            draft, fingerprint = specs.open_draft(path)
            written = path.read_text(encoding="utf-8")
        except SpecError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except OSError as exc:
            raise gr.Error(f"cannot read {path.name}: {exc.strerror or exc}", print_exception=False) from None
        return load(draft, fingerprint, f"Editing `{chosen}`.", written)

    def start_new(request: gr.Request) -> tuple:
        builder(request)
        draft = specs.Draft(gpt_id=specs.free_id("my-gpt", spec_ids(store)), name="My GPT",
                            instructions="You are a helpful assistant.")
        return load(draft, None, "New GPT — not saved yet.")

    def fork_gpt(chosen: str | None, request: gr.Request) -> tuple:
        if not chosen:
            raise gr.Error("Pick the GPT to fork in “Edit a GPT”.", print_exception=False)
        if not access.can_edit(identify(request), chosen):
            raise gr.Error(f"You cannot fork `{chosen}`: it is not one of your GPTs.", print_exception=False)
        try:
            draft = specs.fork(store.gpts_dir / f"{chosen}.yaml", store.gpts_dir)
        except SpecError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return load(draft, None, f"Fork of `{chosen}` — not saved yet.")

    def save_draft(request: gr.Request, base_fields: dict[str, Any], fingerprint: str | None, count: int, *values: Any) -> tuple:
        draft = draft_from_form(base_fields, list(values))
        who = editor(request, draft.gpt_id)
        try:
            result = store.save(draft.gpt_id, draft.to_yaml(), loaded_fingerprint=fingerprint)
        except SpecError as exc:
            message = "Not saved — the file is unchanged.\n\n" + problems_markdown(exc.problems)
            return gr.update(), gr.update(), count, message, gr.update()
        except (StorageError, OSError) as exc:
            return gr.update(), gr.update(), count, f"Not saved — the file is unchanged: {esc(_reason(exc))}", gr.update()
        note = f"Saved `{esc(result.path.name)}` — it is in the store now."
        if result.warning:
            gr.Warning(result.warning)
            note += f"\n\n⚠️ {md_text(result.warning)} (last write wins)."
        written = result.path.read_text(encoding="utf-8")
        return result.fingerprint, editable(who, draft.gpt_id), count + 1, note, written

    def check_raw(chosen_id: str, text: str, request: gr.Request) -> str:
        builder(request)
        return problems_markdown(specs.validate((chosen_id or "").strip(), text or "", store.gpts_dir))

    def save_raw(chosen_id: str, text: str, fingerprint: str | None, count: int, request: gr.Request) -> dict[Any, Any]:
        chosen_id = (chosen_id or "").strip()
        who = editor(request, chosen_id)
        text = text or ""
        text = text if text.endswith("\n") or not text else text + "\n"  # the code editor drops the final newline
        try:
            result = store.save(chosen_id, text, loaded_fingerprint=fingerprint)
        except SpecError as exc:
            return {status: "Not saved — the file is unchanged.\n\n" + problems_markdown(exc.problems)}
        except (StorageError, OSError) as exc:
            return {status: f"Not saved — the file is unchanged: {esc(_reason(exc))}"}
        note = f"Saved `{esc(result.path.name)}` as written — it is in the store now."
        if result.warning:
            gr.Warning(result.warning)
            note += f"\n\n⚠️ {md_text(result.warning)} (last write wins)."
        reloaded = load(specs.draft_from_text(chosen_id, text), result.fingerprint, note, text)
        return {**dict(zip(loaded_outputs, reloaded)), editing: editable(who, chosen_id), saved: count + 1}

    def add_uploads(
        files: list[Any] | None, chosen_id: str, current: str, request: gr.Request
    ) -> tuple[str | dict[str, Any], str, None]:
        if not files:
            return gr.update(), "", None
        try:  # the files go into this GPT's own folder: it must be the caller's
            access.claim_for_edit(identify(request), (chosen_id or "").strip())
        except GPTBuilderError as exc:
            return gr.update(), f"❌ {md_text(exc)}", None
        added, notes = _lines(current), []
        for file in files:
            path = Path(getattr(file, "name", None) or str(file))
            try:
                path = specs.received_upload(path, upload.GRADIO_CACHE)  # again: the handler trusts no path
                relative = specs.store_upload(
                    (chosen_id or "").strip(), path, path.name, store.gpts_dir, max_bytes=specs.MAX_UPLOAD_BYTES
                )
            except (InputError, StorageError) as exc:
                notes.append(f"❌ {md_text(exc)}")
                continue
            if relative not in added:
                added.append(relative)
            notes.append(f"Added `{relative}`.")
        return "\n".join(added), "\n\n".join(notes), None

    def preview_reply(
        request: gr.Request,
        text: str,
        chat: list[dict[str, Any]],
        turns: list[dict[str, str]],
        base_fields: dict[str, Any],
        *values: Any,
    ) -> Iterator[tuple]:
        builder(request)
        if not (text or "").strip():
            raise gr.Error("Type a message to try the draft.", print_exception=False)
        draft = draft_from_form(base_fields, list(values))
        spec_text = draft.to_yaml()
        try:
            agent = _preview_agent(draft.gpt_id, spec_text)
        except GPTBuilderError as exc:
            raise gr.Error(f"The draft cannot run yet:\n{exc}", print_exception=False) from None
        turns = [*(turns or []), {"role": "user", "content": text}]
        shown = [*chat, {"role": "user", "content": text}]
        answer = Answer()

        def view() -> list[dict[str, Any]]:
            reply = answer_html(answer_content(answer.text, answer.extra()))
            return [*shown, *step_messages(answer.steps), {"role": "assistant", "content": reply}]

        try:
            for event in agent.stream(turns):
                answer.feed(event)
                yield view(), "", turns
        except GPTBuilderError as exc:
            answer.error = str(exc)
        yield view(), "", [*turns, {"role": "assistant", "content": answer.text}]

    def _preview_agent(draft_id: str, spec_text: str) -> Any:
        key = hashlib.sha256(f"{draft_id}\n{spec_text}".encode()).hexdigest()
        with previews_lock:
            if key in previews:
                return previews[key]
        from ..agent import compile_agent

        loaded = specs.load_draft(draft_id, spec_text, store.gpts_dir)
        agent = compile_agent(loaded, data_dir=preview_data_dir)
        with previews_lock:
            while len(previews) >= PREVIEW_CACHE:
                previews.pop(next(iter(previews)))
            previews[key] = agent
        return agent

    gr.on([c.change for c in form], show, [base, *form], [yaml_view, problems], api_name="builder_view",
          trigger_mode="always_last", show_progress="hidden")
    editing.input(open_existing, editing, loaded_outputs, api_name="builder_open")
    new.click(start_new, None, loaded_outputs, api_name="builder_new")
    fork.click(fork_gpt, editing, loaded_outputs, api_name="builder_fork")
    save.click(save_draft, [base, loaded_fingerprint, saved, *form], [loaded_fingerprint, editing, saved, status, raw],
               api_name="builder_save")
    raw.change(check_raw, [gpt_id, raw], raw_problems, api_name="builder_check_yaml", trigger_mode="always_last",
               show_progress="hidden")
    raw_save.click(save_raw, [gpt_id, raw, loaded_fingerprint, saved], [*loaded_outputs, editing, saved],
                   api_name="builder_save_yaml")
    upload.upload(add_uploads, [upload, gpt_id, knowledge], [knowledge, status, upload], api_name="builder_upload")
    gr.on([preview_message.submit, preview_send.click], preview_reply, [preview_message, preview, preview_turns, base, *form],
          [preview, preview_message, preview_turns], api_name="builder_preview", concurrency_limit=4)
    return BuilderView(editing=editing, saved=saved)


def _reason(exc: Exception) -> str:
    # an OSError's strerror, not its str(): that names the server's temporary file
    return str(exc) if isinstance(exc, StorageError) else str(getattr(exc, "strerror", None) or exc)
