"""Importing OpenAI GPT/Assistant exports and Dify DSL files: what maps, what is reported, what is refused."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import yaml

from gptbuilder.errors import InputError
from gptbuilder.importer import MAX_IMPORT_BYTES, _slug, convert, convert_data, detect, write
from gptbuilder.loader import load_spec
from gptbuilder.spec import ID_PATTERN, ActionTool
from gptbuilder.tools.openapi import load_actions

FIXTURES = Path(__file__).parent / "fixtures" / "import"


def fields(result, *, lost: bool) -> list[str]:
    return [u.field for u in result.unmapped if u.lost is lost]


def test_openai_gpt_export_maps_instructions_starters_and_actions(tmp_path):
    result = convert(FIXTURES / "openai_gpt.json")
    assert result.format == "openai-gpt" and result.gpt_id == "trail-shoe-advisor"
    spec = result.spec
    assert spec["name"] == "Trail Shoe Advisor"
    assert spec["instructions"].startswith("You help hikers choose trail shoes")
    assert spec["conversation_starters"][2] == "Is the Trail Runner in stock in size 44?"
    assert spec["widget"] == {"greeting": "Hello! Tell me about your hikes and I'll find you a shoe."}
    assert spec["tools"][0] == "python"
    assert spec["tools"][1]["action"] == {
        "openapi": "actions/trail-shoe-advisor-1.openapi.yaml",
        "auth": {"type": "bearer", "token_env": "TRAIL_SHOE_ADVISOR_API_KEY"},
    }
    assert result.lost == []
    ignored = fields(result, lost=False)
    assert {"gizmo.id", "gizmo.author", "gizmo.vanity_metrics", "product_features"} <= set(ignored)
    assert "tools[1].metadata.auth" in ignored, "the secret to set is reported"

    out = tmp_path / "gpts" / "trail-shoe-advisor.yaml"
    written = write(result, out, source="openai_gpt.json")
    assert written.paths == [out, out.parent / "actions" / "trail-shoe-advisor-1.openapi.yaml"]
    assert written.replaced == []
    loaded = load_spec(out)
    assert loaded.spec.name == "Trail Shoe Advisor" and loaded.instructions.count("\n") == 2
    (action,) = [t for t in loaded.spec.tools if isinstance(t, ActionTool)]
    operations = load_actions(action.action, spec_folder=loaded.folder, allow_private=False)
    assert [op.operation_id for op in operations] == ["getStock"]
    assert out.read_text().startswith("# Imported from openai_gpt.json (OpenAI GPT export)")


def test_openai_gpt_with_unmappable_tools_and_files_is_reported_and_not_written(tmp_path):
    result = convert(FIXTURES / "openai_gpt_lossy.json")
    assert fields(result, lost=True) == ["tools[0]", "files[0]"]
    reasons = " ".join(u.reason for u in result.lost)
    assert "DALL·E" in reasons and "brand-guide.pdf" in reasons and "knowledge/poster-studio/" in reasons
    out = tmp_path / "poster-studio.yaml"
    with pytest.raises(InputError, match=r"nothing written: 2 part\(s\) of lossy.json cannot be mapped.*--force"):
        write(result, out, source="lossy.json")
    assert not out.exists()
    write(result, out, source="lossy.json", force=True)
    text = out.read_text()
    assert "# NOT MAPPED: tools[0]: image generation (DALL·E) has no equivalent" in text
    assert load_spec(out).spec.conversation_starters == ["A poster for a jazz night"]


def test_openai_assistant_maps_model_and_code_interpreter(tmp_path):
    result = convert(FIXTURES / "openai_assistant.json")
    assert result.format == "openai-assistant"
    assert result.spec["model"] == {
        "provider": "openai", "name": "gpt-4o", "api_key_env": "OPENAI_API_KEY", "temperature": 0.2, "top_p": 1.0
    }
    assert result.spec["tools"] == ["python"]
    (lost,) = result.lost
    assert lost.field == "tools[1]" and "lookup_vendor" in lost.reason and "package.module:lookup_vendor" in lost.reason
    assert {"id", "object", "created_at", "metadata"} <= set(fields(result, lost=False))


def test_dify_chatbot_maps_prompt_questions_opening_and_model(tmp_path):
    result = convert(FIXTURES / "dify_chatbot.yml")
    assert result.format == "dify" and result.gpt_id == "acme-policy-bot"
    spec = result.spec
    assert spec["avatar"] == "📦"
    assert spec["instructions"].startswith("You are Acme's policy assistant.")
    assert spec["conversation_starters"] == ["How long do I have to return shoes?", "Do you ship to Switzerland?"]
    assert spec["widget"]["greeting"] == "Hi! Ask me anything about returns or shipping."
    assert spec["model"] == {
        "provider": "openai", "name": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY",
        "temperature": 0.2, "top_p": 0.9, "max_tokens": 512,
    }
    assert result.lost == []
    ignored = fields(result, lost=False)
    assert "model_config.model.completion_params.presence_penalty" in ignored and "version" in ignored
    out = write(result, tmp_path / "acme-policy-bot.yaml", source="dify_chatbot.yml").paths[0]
    assert load_spec(out).id == "acme-policy-bot"


def test_dify_agent_reports_every_unmappable_part(tmp_path):
    result = convert(FIXTURES / "dify_agent_lossy.yml")
    assert result.spec["tools"] == ["current_time"] and result.spec["max_tool_calls"] == 8
    assert "model" not in result.spec, "an Anthropic model stays unset: the embedded model answers"
    assert fields(result, lost=True) == [
        "model_config.pre_prompt",
        "model_config.model",
        "model_config.agent_mode.tools[1]",
        "model_config.dataset_configs",
        "model_config.user_input_form",
        "model_config.annotation_reply",
    ]


def test_dify_workflow_is_refused_clearly():
    with pytest.raises(InputError, match="this Dify app is a workflow, not a chatbot"):
        convert(FIXTURES / "dify_workflow.yml")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("openapi.json", (FIXTURES / "not_an_export.json").read_text(), "not an OpenAI GPT export"),
        ("list.json", "[1, 2]", "not an OpenAI GPT export"),
        ("broken.json", '{"gizmo": {', "invalid JSON"),
        ("notes.yaml", "just: [a, list", "invalid YAML"),
        ("scalar.yaml", "hello", "an export must be a mapping"),
        ("bad.bin", b"\xff\xfe\x00binary", "not UTF-8 text"),
    ],
)
def test_files_of_the_wrong_format_get_a_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError, match=message):
        convert(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        convert(tmp_path / "nope.json")
    with pytest.raises(InputError, match="is a folder"):
        convert(tmp_path)


def test_existing_files_are_not_overwritten_without_force(tmp_path):
    result = convert(FIXTURES / "dify_chatbot.yml")
    out = tmp_path / "acme-policy-bot.yaml"
    out.write_text("name: Mine\ninstructions: keep me\n")
    with pytest.raises(InputError, match=r"already exists \(the spec of 'Mine'\); pass --force to replace it"):
        write(result, out, source="x")
    assert out.read_text() == "name: Mine\ninstructions: keep me\n"
    assert write(result, out, source="x", force=True).replaced == [out], "a replaced file is named"
    assert "Acme Policy Bot" in out.read_text()


def test_an_output_name_that_is_not_an_id_is_refused(tmp_path):
    with pytest.raises(InputError, match="the file name is the GPT's id"):
        write(convert(FIXTURES / "dify_chatbot.yml"), tmp_path / "My Bot.yaml", source="x")


def test_long_and_odd_values_are_clipped_and_reported(tmp_path):
    data = json.loads((FIXTURES / "openai_assistant.json").read_text())
    data.update(name="   ", description="d" * 600, instructions="", tools=[{"type": "retrieval"}])
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(data))
    result = convert(path)
    assert result.spec["name"] == "Imported Assistant" and len(result.spec["description"]) == 500
    assert fields(result, lost=True) == ["instructions", "tools[0]"]
    assert "description" in fields(result, lost=False)


def test_detect():
    assert detect({"gizmo": {}}) == "openai-gpt"
    assert detect({"object": "assistant"}) == "openai-assistant"
    assert detect({"kind": "app", "app": {"mode": "chat"}}) == "dify"
    assert detect({"kind": "app"}) is None and detect([]) is None


# ----- real files (tests/fixtures/import/real, sources in SOURCES.md) ------------------------------

REAL = FIXTURES / "real"
REAL_FILES = sorted(p for p in REAL.iterdir() if p.suffix in (".json", ".yml", ".yaml"))
REFUSED = {"dify_workflow_ma_pi_jing_da_shi_ren.yml": "this Dify app is a workflow, not a chatbot"}


def test_every_real_file_is_listed_with_its_source_and_small():
    sources = (REAL / "SOURCES.md").read_text()
    assert len(REAL_FILES) >= 8
    for path in REAL_FILES:
        assert f"`{path.name}`" in sources, f"{path.name} has no line in SOURCES.md"
        assert path.stat().st_size < 50_000


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_every_real_file_imports_into_a_spec_that_loads(tmp_path, path):
    if path.name in REFUSED:
        with pytest.raises(InputError, match=REFUSED[path.name]):
            convert(path)
        return
    result = convert(path)
    assert ID_PATTERN.match(result.gpt_id) and result.gpt_id != "imported-gpt"
    assert all(u.field and u.reason for u in result.unmapped)
    assert not any("unknown tool type" in u.reason for u in result.unmapped), "every real tool type is known"
    out = tmp_path / "gpts" / f"{result.gpt_id}.yaml"
    written = write(result, out, source=path.name, force=True)
    loaded = load_spec(out)
    assert loaded.id == result.gpt_id and loaded.spec.name == result.spec["name"]
    assert written.paths[0] == out and written.replaced == []


def test_dify_templates_without_kind_or_version_are_read_as_dify():
    result = convert(REAL / "dify_template_website_generator.yml")
    assert result.format == "dify" and result.gpt_id == "website-generator"
    assert result.spec["avatar"] == "🤖" and result.spec["instructions"].startswith("Your task is to create a one-page")
    assert result.spec["model"]["name"] == "gpt-3.5-turbo-0125" and result.lost == []
    agent = convert(REAL / "dify_template_investment_copilot.yml")
    assert agent.spec["avatar"] == "🤑" and agent.spec["conversation_starters"][1].startswith("What are some recent")
    lost = fields(agent, lost=True)
    assert "model_config.agent_mode.tools[0]" in lost and "model_config.user_input_form" in lost
    assert "yahoo/yahoo_finance_analytics" in " ".join(u.reason for u in agent.lost)


def test_gpt_store_actions_are_read_from_json_schema_when_raw_spec_is_null(tmp_path):
    result = convert(REAL / "gpt_youtube_summaries_by_merlin.json")
    assert result.lost == []
    relative = "actions/youtubesummariesgpt-by-merlin-1.openapi.json"
    assert result.spec["tools"] == [{"action": {"openapi": relative}}]
    source = json.loads((REAL / "gpt_youtube_summaries_by_merlin.json").read_text())
    assert json.loads(result.files[relative]) == source["tools"][0]["metadata"]["json_schema"]
    out = tmp_path / f"{result.gpt_id}.yaml"
    write(result, out, source="merlin.json")
    (action,) = [t for t in load_spec(out).spec.tools if isinstance(t, ActionTool)]
    operations = load_actions(action.action, spec_folder=tmp_path, allow_private=False)
    assert [op.operation_id for op in operations] == ["youtubeTranscript"]


def test_names_in_cjk_get_a_romanized_id():
    assert convert(REAL / "gpt_wang_yangming.json").gpt_id == "wang-yang-ming"
    dify = yaml.safe_load((REAL / "dify_workflow_ma_pi_jing_da_shi_ren.yml").read_text())
    dify["app"]["mode"] = "chat"  # the real name and icon, through the chat path (the file itself is a workflow)
    assert convert_data(dify).gpt_id == "ma-pi-jing-da-shi-ren"
    assert _slug("確定申告について教えてくれる君").startswith("que-ding-shen-gao-ni-tsu-i-te")
    assert _slug("안녕하세요") == "an-nyeong-ha-se-yo"
    assert _slug("Agent工具调用") == "agent-gong-ju-diao-yong" and _slug("l'été") == "l-ete"
    assert _slug("★☆") == _slug("★☆") != _slug("☆★"), "nothing to romanize: a stable hash suffix keeps names apart"
    assert _slug("★☆").startswith("imported-gpt-")


def test_importing_the_same_name_twice_refuses_then_says_what_it_replaced(tmp_path):
    result = convert(REAL / "gpt_wang_yangming.json")
    out = tmp_path / f"{result.gpt_id}.yaml"
    assert write(result, out, source="a.json", force=True).replaced == []
    with pytest.raises(InputError, match=r"mapped \(listed above\); \S+wang-yang-ming.yaml already exists \(the spec "
                       r"of '王阳明'\); pass --force to write the partial spec anyway and replace it"):
        write(result, out, source="b.json")
    assert write(result, out, source="b.json", force=True).replaced == [out]


def _gptracker() -> dict:
    return json.loads((REAL / "gpt_store_anschreiben_generator.json").read_text())


def test_default_model_becomes_the_spec_model_or_is_reported_lost():
    data = _gptracker()
    data["gizmo"]["default_model"] = "gpt-4o"  # the real record predates default_model: only this field is added
    result = convert_data(data)
    assert result.spec["model"] == {"provider": "openai", "name": "gpt-4o", "api_key_env": "OPENAI_API_KEY"}
    (note,) = [u for u in result.unmapped if u.field == "gizmo.default_model"]
    assert not note.lost and "OPENAI_API_KEY" in note.reason
    data["gizmo"]["default_model"] = "gpt-5-thinking"
    result = convert_data(data)
    assert "model" not in result.spec
    (note,) = [u for u in result.unmapped if u.field == "gizmo.default_model"]
    assert note.lost and "'gpt-5-thinking'" in note.reason and "embedded model" in note.reason


def test_assistant_retrieval_becomes_knowledge_and_file_ids_are_lost():
    result = convert(REAL / "assistant_v1_hr_helper.json")
    assert result.spec["knowledge"] == {"files": ["knowledge/hr-helper/*"]}
    lost = {u.field: u.reason for u in result.lost}
    assert set(lost) == {"tools[0]", "file_ids"}
    assert "file-abc123, file-abc456" in lost["file_ids"] and "knowledge/hr-helper/" in lost["file_ids"]
    assert "file_ids" not in fields(result, lost=False)
    v2 = convert(REAL / "assistant_v2_hr_helper_file_search.json")
    assert v2.spec["knowledge"] == {"files": ["knowledge/hr-helper/*"]}
    assert fields(v2, lost=True) == ["tools[0]", "tool_resources.file_search.vector_store_ids"]


def test_canvas_and_image_gen_are_named_unsupported_capabilities():
    data = _gptracker()
    data["tools"][0]["type"], data["tools"][1]["type"] = "image_gen", "canvas"  # the 2025 names of these tools
    data["tools"].append({"type": "retrieval"})
    result = convert_data(data)
    lost = {u.field: u.reason for u in result.lost}
    assert "image generation" in lost["tools[0]"] and lost["tools[1]"].startswith("canvas (")
    assert "knowledge/anschreiben-generator/" in lost["tools[2]"] and "knowledge" in result.spec
    assert not any("unknown" in reason for reason in lost.values())


@pytest.mark.parametrize(("icon", "avatar"), [("grinning", "😀"), ("scream", "😱"), ("robot_face", "🤖"), ("📦", "📦")])
def test_dify_emoji_shortnames_become_the_emoji(icon, avatar):
    dify = yaml.safe_load((REAL / "dify_workflow_ma_pi_jing_da_shi_ren.yml").read_text())
    dify["app"].update(mode="chat", icon=icon)
    assert convert_data(dify).spec["avatar"] == avatar


def test_an_unknown_dify_shortname_is_dropped_with_a_note():
    dify = yaml.safe_load((REAL / "dify_workflow_ma_pi_jing_da_shi_ren.yml").read_text())
    dify["app"].update(mode="chat", icon="no-such-emoji-here")
    result = convert_data(dify)
    assert "avatar" not in result.spec
    assert "not a known emoji name" in {u.field: u.reason for u in result.unmapped}["app.icon"]


def test_store_record_wrappers_are_unwrapped():
    record = _gptracker()
    assert convert_data([{"id": "g-9upSdCEcq", "data": record}]).spec["name"] == "Anschreiben Generator"
    assert convert_data({"gizmo": record, "kind": "chat_page"}).spec["name"] == "Anschreiben Generator"


# ----- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cut", "message"),
    [
        ("gpt_store_anschreiben_generator.json", 0.5, "invalid JSON"),
        ("assistant_v1_hr_helper.json", 0.9, "invalid JSON"),
        ("dify_template_investment_copilot.yml", 0.5, "invalid YAML"),  # inside the quoted pre_prompt
    ],
)
def test_truncated_real_files_get_a_clear_error(tmp_path, name, cut, message):
    text = (REAL / name).read_text()
    path = tmp_path / name
    path.write_text(text[: int(len(text) * cut)])
    with pytest.raises(InputError, match=message):
        convert(path)


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "plugin", "app": {"mode": "chat"}},
        {"app": {"mode": "chat"}},  # no model_config nor workflow: not a template either
        {"openapi": "3.1.0", "paths": {}},
        {"recommended_apps": {}, "app_details": {}},
        [_gptracker(), _gptracker()],
    ],
)
def test_a_file_of_no_known_format_is_refused(data):
    with pytest.raises(InputError, match="not an OpenAI GPT export"):
        convert_data(data)


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:  # sparse: no 10 MB written
        handle.truncate(MAX_IMPORT_BYTES + 1)
    with pytest.raises(InputError, match="an export may be at most"):
        convert(path)


def test_a_yaml_bomb_and_deep_json_are_refused(tmp_path):
    bomb = tmp_path / "bomb.yml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    bomb.write_text("\n".join(lines) + "\napp: {mode: chat, name: *a11}\nmodel_config: {}\n")
    with pytest.raises(InputError, match="alias bomb"):
        convert(bomb)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(InputError, match="nested too deeply"):
        convert(deep)


def _mutations(value, depth=0):
    """Every copy of ``value`` with one of its nodes (to depth 3) replaced by a value of the wrong type."""
    if depth > 3:
        return
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in list(children):
        for wrong in ("x", 7, [], None, {"enabled": True}, [{"type": None}]):
            copy = json.loads(json.dumps(value))
            copy[key] = wrong
            yield copy
        for mutated in _mutations(child, depth + 1):
            copy = json.loads(json.dumps(value))
            copy[key] = mutated
            yield copy


@pytest.mark.parametrize("path", [p for p in REAL_FILES if p.name not in REFUSED], ids=lambda p: p.name)
def test_real_files_with_any_field_of_the_wrong_type_never_crash(path):
    data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    count = 0
    for mutated in _mutations(data):
        count += 1
        with contextlib.suppress(InputError):  # a clear refusal is fine; any other exception fails the test
            convert_data(mutated)
    assert count > 50


def test_a_key_with_a_line_break_cannot_inject_yaml_into_the_spec(tmp_path):
    data = json.loads((REAL / "assistant_v1_hr_helper.json").read_text())
    data["x\nknowledge: {files: ['/etc/*']}\ny"] = {"enabled": True}
    result = convert_data(data)
    out = tmp_path / "hr-helper.yaml"
    write(result, out, source="evil\nname: Injected", force=True)
    loaded = load_spec(out)
    assert loaded.spec.name == "HR Helper" and loaded.spec.knowledge.files == ["knowledge/hr-helper/*"]
