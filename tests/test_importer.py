"""Importing OpenAI GPT/Assistant exports and Dify DSL files: what maps, what is reported, what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gptbuilder.errors import InputError
from gptbuilder.importer import convert, detect, write
from gptbuilder.loader import load_spec
from gptbuilder.spec import ActionTool
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
    with pytest.raises(InputError, match=r"already exists \(the spec of 'Mine'\); pass --force to replace"):
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
