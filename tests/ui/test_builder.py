"""The builder view through gradio_client: live YAML and validation, save, uploads, preview, fork, two tabs."""

from __future__ import annotations

import pytest
from gradio_client import handle_file

from gptbuilder import builder as specs
from tests.ui.conftest import content_of, text_of

EXISTING = "name: Poet\ndescription: Writes poems.\ninstructions: Write poems.\nmodel: {provider: fake}\n"


def form(gpt_id="helper", name="Helper", description="Helps.", category="qa", avatar="🤖", author="", tags="a, b",
         instructions="Be helpful.", starters="Hi\nHelp me", provider="fake", model_name="", temperature=None,
         max_tokens=None, tools=(), knowledge=""):
    """The builder form's values, in its order."""
    return [gpt_id, name, description, category, avatar, author, tags, instructions, starters, provider, model_name,
            temperature, max_tokens, list(tools), knowledge]


@pytest.fixture
def client(write_spec, launch):
    write_spec("poet", EXISTING)
    return launch()[1]


def test_the_live_yaml_view_validates_on_each_change(client):
    yaml_text, problems = client.predict(*form(category="qa", tools=["calculator"]), api_name="/builder_view")
    assert yaml_text.startswith("name: Helper\ndescription: Helps.\ncategory: qa\navatar: 🤖\ntags:\n- a\n- b\n")
    assert yaml_text.endswith("conversation_starters:\n- Hi\n- Help me\nmodel:\n  provider: fake\ntools:\n- calculator")
    assert "Valid" in problems
    _, problems = client.predict(*form(instructions="   ", provider="fakee"), api_name="/builder_view")
    assert "gpts/helper.yaml: instructions: instructions are blank" in problems
    assert "unknown provider 'fakee'; did you mean 'fake'?" in problems
    _, problems = client.predict(*form(gpt_id="Not An Id"), api_name="/builder_view")
    assert "not a valid GPT id" in problems


def test_validate_spec_gives_the_cli_messages(client):
    assert client.predict("poet", EXISTING, api_name="/validate_spec") == []
    problems = client.predict("poet", "name: Poet\ncategory: contnet\ninstructions: x\n", api_name="/validate_spec")
    assert problems == ["gpts/poet.yaml: category: Input should be 'customer-service', 'content', 'coding', 'translation' "
                        "or 'qa'; did you mean 'content'? (line 2)"]


def test_saving_the_form_puts_the_gpt_in_the_store_without_restart(client, gpts_dir):
    assert "helper" not in [c["id"] for c in client.predict("", "all", api_name="/gpts")]
    status = client.predict(*form(), api_name="/builder_save")[-2]
    assert "Saved `helper.yaml`" in status
    assert (gpts_dir / "helper.yaml").read_text().startswith("name: Helper\n")
    assert "helper" in [c["id"] for c in client.predict("", "all", api_name="/gpts")]
    assert text_of([u[0] for u in client.submit("hello", "helper", api_name="/chat")][-1][-1]) == "You said: hello"


def test_saving_a_spec_with_errors_is_refused_and_the_file_untouched(client, gpts_dir):
    before = (gpts_dir / "poet.yaml").read_bytes()
    client.predict("poet", api_name="/builder_open")
    status = client.predict(*form(gpt_id="poet", instructions=""), api_name="/builder_save")[-2]
    assert "Not saved — the file is unchanged." in status and "instructions are blank" in status
    assert (gpts_dir / "poet.yaml").read_bytes() == before
    result = client.predict("poet", "name: [unclosed", "", api_name="/save_spec")
    assert result["saved"] is False and "invalid YAML" in result["problems"][0]
    assert (gpts_dir / "poet.yaml").read_bytes() == before


def test_opening_a_gpt_fills_the_form_and_keeps_fields_the_form_lacks(client, gpts_dir, write_spec):
    write_spec("poet", EXISTING + "tests:\n  - {ask: rain, expect: {contains: [rain]}}\n")
    opened = client.predict("poet", api_name="/builder_open")
    assert list(opened[:3]) == ["poet", "Poet", "Writes poems."]
    client.predict(*form(gpt_id="poet", name="Poet 2", instructions="Write poems."), api_name="/builder_save")
    text = (gpts_dir / "poet.yaml").read_text()
    assert "name: Poet 2" in text and "tests:\n- ask: rain" in text


def test_two_tabs_editing_the_same_gpt_last_write_wins_with_a_warning(launch, write_spec, gpts_dir):
    write_spec("poet", EXISTING)
    demo, tab_a = launch()
    from gradio_client import Client

    tab_b = Client(demo.local_url, verbose=False)
    tab_a.predict("poet", api_name="/builder_open")
    tab_b.predict("poet", api_name="/builder_open")
    first = tab_a.predict(*form(gpt_id="poet", name="From A"), api_name="/builder_save")[-2]
    assert "Saved" in first and "changed elsewhere" not in first
    second = tab_b.predict(*form(gpt_id="poet", name="From B"), api_name="/builder_save")[-2]
    assert "Saved" in second and "changed elsewhere" in second and "last write wins" in second
    assert specs.validate("poet", (gpts_dir / "poet.yaml").read_text(), gpts_dir) == []
    assert "name: From B" in (gpts_dir / "poet.yaml").read_text()


def test_uploads_land_under_the_gpt_folder_and_bad_ones_are_refused(client, gpts_dir, tmp_path, monkeypatch):
    good = tmp_path / "Return Policy.md"
    good.write_text("# Returns\n30 days.\n")
    bad = tmp_path / "tool.exe"
    bad.write_bytes(b"MZ")
    knowledge, status = client.predict([handle_file(good)], "acme", "", api_name="/builder_upload")[:2]
    assert knowledge.startswith("knowledge/acme/return-policy-") and knowledge.endswith(".md")
    with pytest.raises(Exception, match="Invalid file type"):
        client.predict([handle_file(bad)], "acme", knowledge, api_name="/builder_upload")
    assert [p.name for p in (gpts_dir / "knowledge" / "acme").iterdir()] == [knowledge.rsplit("/", 1)[1]]
    monkeypatch.setattr(specs, "MAX_UPLOAD_BYTES", 5)
    knowledge2, status = client.predict([handle_file(good)], "acme", "", api_name="/builder_upload")[:2]
    assert knowledge2 == "" and "over the 5-byte limit" in status
    _, status = client.predict([handle_file(good)], "", "", api_name="/builder_upload")[:2]
    assert "save the GPT under an id" in status or "give the GPT an id" in status


def test_the_preview_chats_with_the_unsaved_draft(client, gpts_dir):
    states = [u[0] for u in client.submit("hi there", [], *form(gpt_id="draft"), api_name="/builder_preview")]
    assert text_of(states[-1][-1]) == "You said: hi there"
    assert not (gpts_dir / "draft.yaml").exists()
    with pytest.raises(Exception, match="cannot run yet"):
        client.predict("hi", [], *form(gpt_id="draft", instructions=""), api_name="/builder_preview")


def test_fork_copies_a_gpt_as_a_new_spec(client, gpts_dir):
    forked = client.predict("poet", api_name="/builder_fork")
    assert list(forked[:2]) == ["poet-copy", "Poet (copy)"]
    client.predict(*forked[:15], api_name="/builder_save")
    assert {c["id"] for c in client.predict("", "all", api_name="/gpts")} == {"poet", "poet-copy"}


@pytest.mark.slow
def test_the_preview_runs_the_draft_on_the_real_embedded_model(client):
    draft = form(gpt_id="draft", instructions="You are a helpful assistant. Answer in one short sentence.",
                 provider="local", temperature=0, max_tokens=30)
    states = [u[0] for u in client.submit("What is the capital of France?", [], *draft, api_name="/builder_preview")]
    assert "Paris" in text_of(states[-1][-1]) and len(states) > 2


def test_the_yaml_editor_saves_the_text_as_written(client, gpts_dir):
    opened = client.predict("poet", api_name="/builder_open")
    assert EXISTING.rstrip("\n") in opened  # the editor starts from the file itself, not a re-dump
    commented = "# my favourite\n" + EXISTING.replace("Writes poems.", "Writes haiku.") + "widget: {allowed_origins: ['https://a.example']}\n"
    problems = client.predict("poet", commented, api_name="/builder_check_yaml")
    assert "Valid" in problems
    client.predict("poet", commented.rstrip("\n"), api_name="/builder_save_yaml")
    assert (gpts_dir / "poet.yaml").read_text() == commented
    assert client.predict("poet", api_name="/gpt")["description"] == "Writes haiku."
    broken = commented.replace("instructions: Write poems.\n", "")
    assert "give the GPT 'instructions'" in client.predict("poet", broken, api_name="/builder_check_yaml")
    result = client.predict("poet", broken, api_name="/builder_save_yaml")
    assert any("Not saved — the file is unchanged." in str(value) for value in result)
    assert (gpts_dir / "poet.yaml").read_text() == commented


def test_the_preview_shows_sources_from_uploaded_knowledge(client, tmp_path):
    doc = tmp_path / "returns.md"
    doc.write_text("# Returns\nShoes can be returned within 30 days.\n")
    knowledge = client.predict([handle_file(doc)], "shop", "", api_name="/builder_upload")[0]
    draft = form(gpt_id="shop", knowledge=knowledge)
    states = [u[0] for u in client.submit("returns?", [], *draft, api_name="/builder_preview")]
    answer = text_of(states[-1][-1])
    assert answer.startswith("You said: returns?") and f"<ol>&#10;<li><code>{knowledge}</code>" in content_of(states[-1][-1])
