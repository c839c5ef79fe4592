"""spec: one YAML file becomes a validated GPTSpec, or a SpecError listing every problem in it."""

from __future__ import annotations

import json
import re
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import gptbuilder.models.registry as registry
from gptbuilder.errors import SpecError, SpecProblem, did_you_mean
from gptbuilder.models.registry import Provider, register_provider, unregister_provider
from gptbuilder.spec import (
    CATEGORIES,
    IMPLEMENTED_SECTIONS,
    ActionTool,
    BuiltinTool,
    FunctionTool,
    GPTSpec,
    LoadedSpec,
    load_spec,
    spec_json_schema,
)
from gptbuilder.yamlsafe import parse_yaml

REPO = Path(__file__).resolve().parents[1]
MINIMAL = "name: Acme\ninstructions: Be helpful.\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(folder: Path, text: str, name: str = "acme.yaml") -> LoadedSpec:
    return load_spec(write(folder, name, text), display=name)


def problems(folder: Path, text: str, name: str = "acme.yaml") -> list[SpecProblem]:
    with pytest.raises(SpecError) as exc:
        load(folder, text, name)
    assert exc.value.problems, "a SpecError must carry at least one problem"
    assert str(exc.value) == "\n".join(str(p) for p in exc.value.problems)
    return exc.value.problems


def one_problem(folder: Path, text: str, name: str = "acme.yaml") -> SpecProblem:
    found = problems(folder, text, name)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def by_field(found: list[SpecProblem]) -> dict[str, SpecProblem]:
    return {p.field: p for p in found}


# --- SpecProblem / SpecError formatting ---------------------------------------------------------


def test_spec_problem_str_format():
    assert str(SpecProblem("gpts/acme.yaml", "model.temperature", "Input should be less than or equal to 2", 7)) == (
        "gpts/acme.yaml: model.temperature: Input should be less than or equal to 2 (line 7)"
    )
    assert str(SpecProblem("gpts/acme.yaml", "model.temperature", "too hot")) == "gpts/acme.yaml: model.temperature: too hot"
    assert str(SpecProblem("gpts/acme.yaml", "", "file not found")) == "gpts/acme.yaml: file not found"


def test_spec_error_carries_every_problem():
    first = SpecProblem("a.yaml", "name", "missing", 1)
    second = SpecProblem("a.yaml", "category", "bad", 2)
    error = SpecError([first, second])
    assert error.problems == [first, second]
    assert str(error) == "a.yaml: name: missing (line 1)\na.yaml: category: bad (line 2)"


def test_did_you_mean():
    assert did_you_mean("lokal", ["local", "openai", "transformers"]) == "; did you mean 'local'?"
    assert did_you_mean("zzzzzz", ["local", "openai"]) == ""
    assert did_you_mean("x", []) == ""


# --- a valid spec ------------------------------------------------------------------------------


def test_minimal_spec_loads_with_defaults(tmp_path: Path):
    loaded = load(tmp_path, MINIMAL)
    assert loaded.id == "acme"
    assert loaded.path == tmp_path / "acme.yaml"
    assert loaded.folder == tmp_path
    assert loaded.instructions == "Be helpful."
    assert loaded.sources == (tmp_path / "acme.yaml",)
    spec = loaded.spec
    assert spec.name == "Acme"
    assert spec.category == "qa"
    assert spec.model.provider == "local"
    assert spec.model.name is None
    assert spec.knowledge is None
    assert spec.tools == []
    assert spec.max_tool_calls == 5
    assert spec.allow_private_network is False


def test_full_spec_from_the_design_loads(tmp_path: Path):
    write(tmp_path, "actions/orders.yaml", "openapi: 3.1.0\n")
    loaded = load(
        tmp_path,
        """\
        name: Acme Support
        description: Orders, shipping and returns for Acme Shoes.
        category: customer-service
        tags: [retail, faq]
        avatar: "👟"
        instructions: |
          You are Acme's support assistant. Answer from the knowledge files and cite them.
        conversation_starters: ["Where is my order?", "How do returns work?"]
        model:
          provider: local
          temperature: 0.2
          max_tokens: 256
        knowledge:
          files: ["knowledge/acme/**/*.md", "knowledge/acme/policies.pdf"]
          top_k: 4
          search: hybrid
        curated_answers:
          - {question: "What is your return window?", answer: "30 days from delivery."}
        tools:
          - calculator
          - action: {openapi: actions/orders.yaml, auth: {type: bearer, token_env: ACME_TOKEN}, confirm: [cancelOrder]}
        widget: {allowed_origins: ["https://acme.example"], greeting: "Hi! How can I help?"}
        tests:
          - {ask: "How long do I have to return shoes?", expect: {contains: ["30 days"], cites: returns.md}}
        """,
        name="acme-support.yaml",
    )
    spec = loaded.spec
    assert loaded.id == "acme-support"
    assert loaded.instructions.startswith("You are Acme's support assistant.")
    assert spec.category == "customer-service"
    assert spec.model.temperature == 0.2
    assert spec.knowledge is not None and spec.knowledge.files == ["knowledge/acme/**/*.md", "knowledge/acme/policies.pdf"]
    assert spec.knowledge.search == "hybrid"
    assert spec.curated_answers[0].answer == "30 days from delivery."
    assert isinstance(spec.tools[0], BuiltinTool) and spec.tools[0].builtin == "calculator"
    action = spec.tools[1]
    assert isinstance(action, ActionTool)
    assert action.action.auth.type == "bearer"
    assert action.action.auth.token_env == "ACME_TOKEN"
    assert action.action.confirm == ["cancelOrder"]
    assert spec.widget is not None and spec.widget.allowed_origins == ["https://acme.example"]
    assert spec.tests[0].expect is not None
    assert spec.tests[0].expect.contains == ["30 days"]
    assert spec.tests[0].expect.cites == ["returns.md"]  # a single string becomes a list


def test_shipped_example_loads():
    loaded = load_spec(REPO / "gpts" / "assistant.yaml")
    assert loaded.id == "assistant"
    assert loaded.spec.name == "Helpful Assistant"
    assert loaded.instructions.startswith("You are a helpful, friendly assistant.")


def test_single_strings_become_lists(tmp_path: Path):
    spec = load(
        tmp_path,
        MINIMAL + "knowledge: {files: 'docs/*.md'}\nmodel: {stop: END}\n",
    ).spec
    assert spec.knowledge is not None and spec.knowledge.files == ["docs/*.md"]
    assert spec.model.stop == ["END"]


def test_spec_is_frozen(tmp_path: Path):
    spec = load(tmp_path, MINIMAL).spec
    with pytest.raises(ValidationError):
        spec.name = "Other"  # type: ignore[misc]


def test_unsupported_sections_lists_filled_sections_not_yet_implemented(tmp_path: Path):
    assert load(tmp_path, MINIMAL).unsupported_sections() == []
    loaded = load(tmp_path, MINIMAL + "knowledge: {files: ['docs/*.md']}\ntools: [calculator]\n")
    expected = [name for name in ("knowledge", "tools") if name not in IMPLEMENTED_SECTIONS]
    assert loaded.unsupported_sections() == expected


def test_resolve_stays_inside_the_folder(tmp_path: Path):
    loaded = load(tmp_path, MINIMAL)
    assert loaded.resolve("docs/a.md") == tmp_path / "docs" / "a.md"
    with pytest.raises(ValueError, match="may not leave"):
        loaded.resolve("../a.md")


# --- unknown fields and did-you-mean -----------------------------------------------------------


def test_unknown_top_level_field_with_suggestion(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "categori: qa\n")
    assert str(problem) == "acme.yaml: categori: unknown field 'categori'; did you mean 'category'? (line 3)"


def test_unknown_nested_field_with_dotted_path(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "model:\n  provider: local\n  temprature: 0.5\n")
    assert str(problem) == "acme.yaml: model.temprature: unknown field 'temprature'; did you mean 'temperature'? (line 5)"


def test_unknown_field_without_close_match_lists_the_allowed_ones(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "limits: {zzzzzz: 1}\n")
    assert problem.field == "limits.zzzzzz"
    assert problem.message == "unknown field 'zzzzzz' (allowed: requests_per_minute, tokens_per_day)"


def test_unknown_field_deep_inside_a_tool(tmp_path: Path):
    problem = one_problem(
        tmp_path,
        MINIMAL + "tools:\n  - action:\n      openapi: a.yaml\n      auth: {type: bearer, tokn_env: X}\n",
    )
    assert problem.field == "tools[0].action.auth.tokn_env"
    assert problem.message == "unknown field 'tokn_env'; did you mean 'token_env'?"
    assert problem.line == 6


def test_unknown_field_in_a_test_case(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "tests:\n  - ask: hi\n    expect: {contians: x}\n")
    assert problem.field == "tests[0].expect.contians"
    assert problem.message == "unknown field 'contians'; did you mean 'contains'?"
    assert problem.line == 5


# --- wrong types and ranges --------------------------------------------------------------------


def test_wrong_types_are_each_reported(tmp_path: Path):
    found = by_field(
        problems(
            tmp_path,
            MINIMAL + "tags: 5\nmax_tool_calls: [1]\nmodel:\n  temperature: hot\n",
        )
    )
    assert set(found) == {"tags", "max_tool_calls", "model.temperature"}
    assert found["tags"].message == "Input should be a valid list"
    assert found["tags"].line == 3
    assert found["max_tool_calls"].message == "Input should be a valid integer"
    assert found["model.temperature"].message.startswith("Input should be a valid number")
    assert found["model.temperature"].line == 6


def test_out_of_range_value(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "model:\n  temperature: 3\n")
    assert str(problem) == "acme.yaml: model.temperature: Input should be less than or equal to 2 (line 4)"


def test_missing_name(tmp_path: Path):
    problem = one_problem(tmp_path, "instructions: hi\n")
    assert problem.field == "name"
    assert problem.message == "required field is missing"


def test_model_section_must_be_a_mapping(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "model: gpt-4\n")
    assert problem.field == "model"
    assert problem.line == 3
    assert "valid dictionary" in problem.message


@pytest.mark.parametrize(
    ("extra", "field", "fragment"),
    [
        ("model: {api_key_env: 'sk-123 secret'}\n", "model.api_key_env", "String should match pattern"),
        ("model: {base_url: 'ftp://example.com'}\n", "model.base_url", "must be an http:// or https:// URL"),
        ("knowledge: {chunk_size: 200, chunk_overlap: 300}\n", "knowledge", "chunk_overlap must be smaller than chunk_size"),
        ("widget: {allowed_origins: ['https://acme.example/path']}\n", "widget.allowed_origins", "is not an origin"),
        ("widget: {color: red}\n", "widget.color", "String should match pattern"),
        ("tests:\n  - ask: hi\n", "tests[0]", "a test needs 'expect' or 'retrieves'"),
        ("tests:\n  - {ask: hi, expect: {regex: '('}}\n", "tests[0].expect.regex", "invalid regular expression"),
        ("name: ''\n", "name", "at least 1 character"),
    ],
)
def test_field_checks(tmp_path: Path, extra: str, field: str, fragment: str):
    text = MINIMAL.replace("name: Acme\n", "") if extra.startswith("name:") else MINIMAL
    problem = one_problem(tmp_path, text + extra)
    assert problem.field == field
    assert fragment in problem.message
    assert problem.line is not None


# --- enums -------------------------------------------------------------------------------------


def test_category_enum_with_suggestion(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "category: codng\n")
    assert problem.field == "category"
    assert problem.line == 3
    assert problem.message == (
        "Input should be 'customer-service', 'content', 'coding', 'translation' or 'qa'; did you mean 'coding'?"
    )


def test_every_category_is_accepted(tmp_path: Path):
    assert CATEGORIES == ("customer-service", "content", "coding", "translation", "qa")
    for category in CATEGORIES:
        assert load(tmp_path, MINIMAL + f"category: {category}\n").spec.category == category


@pytest.mark.parametrize(
    ("extra", "field", "suggestion"),
    [
        ("knowledge: {search: hybird}\n", "knowledge.search", "hybrid"),
        ("knowledge: {splitter: markdwon}\n", "knowledge.splitter", "markdown"),
        ("knowledge: {on_no_match: refuze}\n", "knowledge.on_no_match", "refuse"),
        ("widget: {position: bottom-rigth}\n", "widget.position", "bottom-right"),
        ("widget: {theme: drak}\n", "widget.theme", "dark"),
        ("tools:\n  - action: {openapi: a.yaml, auth: {type: bearr}}\n", "tools[0].action.auth.type", "bearer"),
    ],
)
def test_enum_values_get_did_you_mean(tmp_path: Path, extra: str, field: str, suggestion: str):
    problem = one_problem(tmp_path, MINIMAL + extra)
    assert problem.field == field
    assert problem.message.startswith("Input should be ")
    assert problem.message.endswith(f"; did you mean {suggestion!r}?")
    assert problem.line is not None


def test_enum_without_close_match_has_no_suggestion(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "knowledge: {search: zzzzzzzz}\n")
    assert problem.message == "Input should be 'dense', 'bm25' or 'hybrid'"


# --- all problems at once ----------------------------------------------------------------------


def test_three_mistakes_give_three_problems(tmp_path: Path):
    found = problems(
        tmp_path,
        """\
        name: Acme
        instructions: hi
        category: codng
        knowledge:
          search: hybird
        model:
          temprature: 1
        """,
    )
    assert len(found) == 3
    assert sorted(str(p) for p in found) == [
        "acme.yaml: category: Input should be 'customer-service', 'content', 'coding', 'translation' or 'qa'; "
        "did you mean 'coding'? (line 3)",
        "acme.yaml: knowledge.search: Input should be 'dense', 'bm25' or 'hybrid'; did you mean 'hybrid'? (line 5)",
        "acme.yaml: model.temprature: unknown field 'temprature'; did you mean 'temperature'? (line 7)",
    ]


def test_bad_id_and_field_errors_are_reported_together(tmp_path: Path):
    found = problems(tmp_path, "name: Acme\ninstructions: hi\ncategori: qa\n", name="Acme_Support.yaml")
    assert [p.field for p in found] == ["id", "categori"]


def test_bad_id_and_several_path_problems_are_reported_together(tmp_path: Path):
    found = problems(
        tmp_path,
        """\
        name: Acme
        instructions_file: ../instructions.md
        knowledge:
          files: ["/etc/*"]
        tools:
          - action: {openapi: ../../orders.yaml}
        """,
        name="Acme.yaml",
    )
    assert [p.field for p in found] == ["id", "instructions_file", "knowledge.files[0]", "tools[0].action.openapi"]


def test_bad_id_is_reported_even_when_the_yaml_is_malformed(tmp_path: Path):
    # The id comes from the file name; it is wrong whatever the file holds.
    found = problems(tmp_path, "name: Acme\ninstructions: [unclosed\n", name="My GPT.yaml")
    assert {p.field for p in found} == {"id", ""}


def test_field_errors_and_provider_and_path_problems_are_reported_together(tmp_path: Path):
    # Three different mistakes in one file: a typo'd field, an unknown provider, an escaping path.
    found = problems(
        tmp_path,
        """\
        name: Acme
        instructions_file: ../outside.md
        categori: qa
        model:
          provider: lokal
        """,
    )
    assert {p.field for p in found} == {"categori", "model.provider", "instructions_file"}


# --- the id comes from the file name -----------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "suggestion"),
    [
        ("Acme.yaml", "acme.yaml"),
        ("acme_support.yaml", "acme-support.yaml"),
        ("acme support.yaml", "acme-support.yaml"),
        ("Acme Support_Bot.yaml", "acme-support-bot.yaml"),
        ("-acme-.yaml", "acme.yaml"),
        ("acme--support.yaml", "acme-support.yaml"),
        ("___.yaml", "my-gpt.yaml"),
    ],
)
def test_bad_id_in_the_file_name_is_rejected_with_a_suggestion(tmp_path: Path, file_name: str, suggestion: str):
    problem = one_problem(tmp_path, MINIMAL, name=file_name)
    assert problem.file == file_name
    assert problem.field == "id"
    stem = file_name.removesuffix(".yaml")
    assert problem.message.startswith(f"{stem!r} (the file name) is not a valid GPT id: use ")
    assert "lowercase letters, digits and dashes" in problem.message
    assert problem.message.endswith(f"e.g. rename the file to {suggestion}")


@pytest.mark.parametrize("file_name", ["a.yaml", "acme-support.yaml", "gpt4-helper.yaml", "x" * 64 + ".yaml"])
def test_good_ids(tmp_path: Path, file_name: str):
    assert load(tmp_path, MINIMAL, name=file_name).id == file_name.removesuffix(".yaml")


def test_too_long_id_is_rejected_with_a_usable_suggestion(tmp_path: Path):
    stem = "a" * 70
    problem = one_problem(tmp_path, MINIMAL, name=f"{stem}.yaml")
    assert problem.field == "id"
    assert "64" in problem.message  # say what is wrong: the length
    suggested = re.search(r"rename the file to (\S+)\.yaml", problem.message)
    assert suggested is not None
    assert len(suggested.group(1)) <= 64  # never suggest a name that is itself invalid


# --- instructions ------------------------------------------------------------------------------


def test_neither_instructions_nor_file(tmp_path: Path):
    problem = one_problem(tmp_path, "name: Acme\n")
    assert problem.message == "give the GPT 'instructions' (text) or 'instructions_file' (a path)"
    assert str(problem).startswith("acme.yaml: ")


def test_both_instructions_and_file(tmp_path: Path):
    write(tmp_path, "prompt.md", "From the file.")
    problem = one_problem(tmp_path, "name: Acme\ninstructions: inline\ninstructions_file: prompt.md\n")
    assert problem.message == "give 'instructions' or 'instructions_file', not both"


def test_instructions_file_is_read_relative_to_the_spec_folder(tmp_path: Path, monkeypatch):
    gpts = tmp_path / "gpts"
    write(gpts, "prompts/acme.md", "\n  Be brief and kind.  \n")
    spec_path = write(gpts, "acme.yaml", "name: Acme\ninstructions_file: prompts/acme.md\n")
    monkeypatch.chdir(tmp_path)  # the working directory does not matter
    loaded = load_spec(spec_path)
    assert loaded.instructions == "Be brief and kind."
    assert loaded.spec.instructions is None
    assert loaded.sources == (spec_path, gpts / "prompts" / "acme.md")


def test_missing_instructions_file_is_named(tmp_path: Path):
    problem = one_problem(tmp_path, "name: Acme\ninstructions_file: prompts/missing.md\n")
    assert str(problem) == "acme.yaml: instructions_file: file not found: prompts/missing.md (line 2)"


def test_instructions_file_that_is_a_folder(tmp_path: Path):
    (tmp_path / "prompts").mkdir()
    problem = one_problem(tmp_path, "name: Acme\ninstructions_file: prompts\n")
    assert problem.field == "instructions_file"
    assert problem.message.startswith("cannot read prompts")


def test_empty_instructions_file(tmp_path: Path):
    write(tmp_path, "prompt.md", "   \n\n")
    problem = one_problem(tmp_path, "name: Acme\ninstructions_file: prompt.md\n")
    assert problem.message == "prompt.md is empty"


def test_too_long_instructions_file(tmp_path: Path):
    write(tmp_path, "prompt.md", "x" * 100_001)
    problem = one_problem(tmp_path, "name: Acme\ninstructions_file: prompt.md\n")
    assert problem.message == "prompt.md has 100,001 characters; at most 100,000 are allowed"


def test_huge_instructions_file_is_not_read_whole(tmp_path: Path):
    (tmp_path / "prompt.md").write_bytes(b"x" * 500_000)
    problem = one_problem(tmp_path, "name: Acme\ninstructions_file: prompt.md\n")
    assert problem.message == "prompt.md is 500,000 bytes; instructions may be at most 100,000 characters"


# --- paths may not leave the spec's folder -----------------------------------------------------


@pytest.mark.parametrize("target", ["../prompt.md", "/etc/passwd", "prompts/../../prompt.md"])
def test_instructions_file_outside_the_folder_is_rejected(tmp_path: Path, target: str):
    gpts = tmp_path / "gpts"
    write(tmp_path, "prompt.md", "outside")
    problem = one_problem(gpts, f"name: Acme\ninstructions_file: {target}\n")
    assert problem.field == "instructions_file"
    assert problem.line == 2
    assert target in problem.message


def test_instructions_file_symlinked_outside_is_rejected(tmp_path: Path):
    gpts = tmp_path / "gpts"
    gpts.mkdir(exist_ok=True)
    write(tmp_path, "secret.txt", "do not read me")
    (gpts / "prompt.md").symlink_to(tmp_path / "secret.txt")
    problem = one_problem(gpts, "name: Acme\ninstructions_file: prompt.md\n")
    assert problem.field == "instructions_file"
    assert "through a symlink" in problem.message
    assert "do not read me" not in str(problem)


def test_knowledge_globs_outside_the_folder_are_rejected_with_their_lines(tmp_path: Path):
    found = problems(
        tmp_path,
        """\
        name: Acme
        instructions: hi
        knowledge:
          files:
            - docs/*.md
            - ../private/*.md
            - /etc/*
        """,
    )
    assert [p.field for p in found] == ["knowledge.files[1]", "knowledge.files[2]"]
    assert "may not leave the spec's folder" in found[0].message
    assert "must be relative to the spec's folder, not absolute" in found[1].message
    assert [p.line for p in found] == [6, 7]  # the line of each list item


def test_knowledge_glob_through_a_symlink_outside_is_rejected(tmp_path: Path):
    gpts = tmp_path / "gpts"
    gpts.mkdir(exist_ok=True)
    (tmp_path / "private").mkdir()
    write(tmp_path, "private/secret.md", "secret")
    (gpts / "docs").symlink_to(tmp_path / "private", target_is_directory=True)
    found = problems(gpts, "name: Acme\ninstructions: hi\nknowledge:\n  files: ['docs/*.md']\n")
    assert [p.field for p in found] == ["knowledge.files[0]"]
    assert "symlink" in found[0].message


def test_knowledge_file_through_a_symlink_outside_is_rejected(tmp_path: Path):
    gpts = tmp_path / "gpts"
    gpts.mkdir(exist_ok=True)
    write(tmp_path, "private/secret.md", "secret")
    (gpts / "docs").symlink_to(tmp_path / "private", target_is_directory=True)
    found = problems(gpts, "name: Acme\ninstructions: hi\nknowledge:\n  files: ['docs/secret.md']\n")
    assert [p.field for p in found] == ["knowledge.files[0]"]
    assert "through a symlink" in found[0].message


@pytest.mark.parametrize("target", ["../orders.yaml", "/etc/passwd"])
def test_action_openapi_outside_the_folder_is_rejected_with_its_line(tmp_path: Path, target: str):
    problem = one_problem(
        tmp_path,
        f"name: Acme\ninstructions: hi\ntools:\n  - calculator\n  - action:\n      openapi: {target}\n",
    )
    assert problem.field == "tools[1].action.openapi"
    assert target in problem.message
    assert problem.line == 6


def test_action_openapi_symlinked_outside_is_rejected(tmp_path: Path):
    gpts = tmp_path / "gpts"
    gpts.mkdir(exist_ok=True)
    write(tmp_path, "orders.yaml", "openapi: 3.1.0\n")
    (gpts / "orders.yaml").symlink_to(tmp_path / "orders.yaml")
    problem = one_problem(gpts, "name: Acme\ninstructions: hi\ntools:\n  - action: {openapi: orders.yaml}\n")
    assert problem.field == "tools[0].action.openapi"
    assert "through a symlink" in problem.message


# --- model provider ----------------------------------------------------------------------------


def test_unknown_provider_with_suggestion(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "model:\n  provider: lokal\n")
    assert problem.field == "model.provider"
    assert problem.line == 4
    assert problem.message.startswith("unknown provider 'lokal'; did you mean 'local'? (installed: ")
    assert "local" in problem.message.split("installed: ")[1]


def test_unknown_provider_without_close_match(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "model:\n  provider: qqqqqqqq\n")
    assert "did you mean" not in problem.message
    assert problem.message.startswith("unknown provider 'qqqqqqqq' (installed: ")


class _PickyProvider(Provider):
    name = "picky"

    def check(self, config, *, base_dir):
        return [("name", f"no model called {config.name!r} in {base_dir.name}")] if config.name != "good" else []


@pytest.fixture
def picky_provider():
    register_provider(_PickyProvider())
    yield
    unregister_provider("picky")


def test_provider_check_problems_are_reported_with_field_and_line(tmp_path: Path, picky_provider):
    problem = one_problem(tmp_path, MINIMAL + "model:\n  provider: picky\n  name: bad\n")
    assert str(problem) == f"acme.yaml: model.name: no model called 'bad' in {tmp_path.name} (line 5)"
    assert load(tmp_path, MINIMAL + "model:\n  provider: picky\n  name: good\n").spec.model.provider == "picky"


def test_provider_plugin_that_cannot_be_imported_is_a_spec_problem(tmp_path: Path, monkeypatch):
    # A broken plugin must not turn `load_spec` into a crash: it is one more problem in the file.
    real = registry._entry_points
    monkeypatch.setattr(
        registry,
        "_entry_points",
        lambda: {**real(), "broken": EntryPoint("broken", "gptbuilder_no_such_module_xyz:provider", registry.GROUP)},
    )
    found = problems(tmp_path, MINIMAL + "model:\n  provider: broken\n")
    assert [p.field for p in found] == ["model.provider"]
    assert "gptbuilder_no_such_module_xyz" in found[0].message
    assert found[0].line == 4


class _CrashingProvider(Provider):
    name = "crashing"

    def check(self, config, *, base_dir):
        raise RuntimeError("plugin bug")


def test_provider_whose_check_crashes_is_a_spec_problem(tmp_path: Path):
    # A third-party check() with a bug must not turn validation into a traceback.
    register_provider(_CrashingProvider())
    try:
        found = problems(tmp_path, MINIMAL + "model:\n  provider: crashing\n")
    finally:
        unregister_provider("crashing")
    assert [p.field for p in found] == ["model.provider"]
    assert "plugin bug" in found[0].message
    assert found[0].line == 4


def test_local_provider_rejects_a_file_that_is_not_gguf(tmp_path: Path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "weights.bin").write_bytes(b"PK\x03\x04 not a gguf")
    problem = one_problem(tmp_path, MINIMAL + "model:\n  provider: local\n  name: models/weights.bin\n")
    assert problem.field == "model.name"
    assert problem.line == 5
    assert "is not a GGUF model file" in problem.message
    assert "weights.bin" in problem.message


def test_local_provider_rejects_a_missing_model_file(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "model:\n  name: models/nope.gguf\n")
    assert problem.field == "model.name"
    assert problem.message.startswith("model file not found: ")
    assert problem.message.endswith("nope.gguf")


def test_local_provider_rejects_a_folder(tmp_path: Path):
    (tmp_path / "models").mkdir()
    problem = one_problem(tmp_path, MINIMAL + "model:\n  name: models\n")
    assert problem.field == "model.name"
    assert "is a folder" in problem.message


def test_local_provider_accepts_a_gguf_file_relative_to_the_spec(tmp_path: Path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 32)
    loaded = load(tmp_path, MINIMAL + "model:\n  provider: local\n  name: models/tiny.gguf\n")
    assert loaded.spec.model.name == "models/tiny.gguf"


# --- curated answers ---------------------------------------------------------------------------


def test_duplicate_curated_questions_are_rejected(tmp_path: Path):
    problem = one_problem(
        tmp_path,
        MINIMAL
        + "curated_answers:\n"
        + "  - {question: 'What is your return window?', answer: '30 days.'}\n"
        + "  - {question: '  what is your   RETURN window?', answer: '14 days.'}\n",
    )
    assert problem.field == "curated_answers"
    assert "duplicate question" in problem.message
    assert "RETURN window" in problem.message
    assert problem.line is not None


def test_distinct_curated_questions_are_fine(tmp_path: Path):
    spec = load(
        tmp_path,
        MINIMAL + "curated_answers:\n  - {question: 'a?', answer: x}\n  - {question: 'b?', answer: y, threshold: 0.9}\n",
    ).spec
    assert [a.question for a in spec.curated_answers] == ["a?", "b?"]
    assert spec.curated_answers[1].threshold == 0.9


# --- tools -------------------------------------------------------------------------------------


def test_tool_entries_of_every_form_parse(tmp_path: Path):
    spec = load(
        tmp_path,
        """\
        name: Acme
        instructions: hi
        tools:
          - calculator
          - current_time
          - my_pkg.tools:lookup_order
          - function: other.mod:run
          - builtin: python
            options: {timeout: 5}
          - action: {openapi: actions/orders.yaml}
        """,
    ).spec
    kinds = [type(tool) for tool in spec.tools]
    assert kinds == [BuiltinTool, BuiltinTool, FunctionTool, FunctionTool, BuiltinTool, ActionTool]
    assert spec.tools[0].builtin == "calculator"
    assert spec.tools[2].function == "my_pkg.tools:lookup_order"
    assert spec.tools[3].function == "other.mod:run"
    assert spec.tools[4].options == {"timeout": 5}
    assert spec.tools[5].action.openapi == "actions/orders.yaml"
    assert spec.tools[5].action.auth.type == "none"


def test_unknown_builtin_tool_gets_a_suggestion(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "tools:\n  - calculater\n")
    assert problem.field.startswith("tools[0]")
    assert problem.line == 4
    assert problem.message.endswith("; did you mean 'calculator'?")
    assert "'calculator', 'current_time', 'python' or 'fetch_url'" in problem.message


def test_unknown_builtin_mapping_gets_a_suggestion(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "tools:\n  - builtin: pyton\n")
    assert problem.field == "tools[0].builtin"
    assert problem.message.endswith("; did you mean 'python'?")


@pytest.mark.parametrize("entry", ["{foo: bar}", "3", "null", "[calculator]"])
def test_nonsense_tool_entry_gets_a_clear_message(tmp_path: Path, entry: str):
    problem = one_problem(tmp_path, MINIMAL + f"tools:\n  - {entry}\n")
    assert problem.field == "tools[0]"
    assert problem.line == 4
    assert problem.message == (
        "a tool is a built-in name (calculator, current_time, python, fetch_url), 'package.module:function', "
        "or a mapping with 'action', 'function' or 'builtin'"
    )


@pytest.mark.parametrize("entry", ["'pkg.mod:'", "'bad:mod:func'", "'pkg mod:func'", "{function: no_colon}"])
def test_malformed_function_reference(tmp_path: Path, entry: str):
    problem = one_problem(tmp_path, MINIMAL + f"tools:\n  - {entry}\n")
    assert problem.field == "tools[0].function"
    assert "pattern" in problem.message


def test_action_without_openapi(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "tools:\n  - action: {}\n")
    assert str(problem) == "acme.yaml: tools[0].action.openapi: required field is missing (line 4)"


def test_action_that_is_not_a_mapping(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "tools:\n  - action: orders.yaml\n")
    assert problem.field == "tools[0].action"
    assert "valid dictionary" in problem.message


def test_errors_in_several_tools_are_all_reported(tmp_path: Path):
    found = problems(tmp_path, MINIMAL + "tools:\n  - calculater\n  - {foo: 1}\n  - builtin: fetch_url\n    optons: {}\n")
    assert [p.field for p in found] == ["tools[0].builtin", "tools[1]", "tools[2].optons"]
    assert [p.line for p in found] == [4, 5, 7]


# --- YAML problems come through load_spec ------------------------------------------------------


def test_python_tag_through_load_spec(tmp_path: Path):
    problem = one_problem(tmp_path, "name: !!python/object/apply:os.system ['true']\ninstructions: hi\n")
    assert problem.field == ""
    assert problem.line == 1
    assert "is not allowed" in problem.message


@pytest.mark.parametrize("text", ["- a\n- b\n", "hello\n", ""])
def test_non_mapping_through_load_spec(tmp_path: Path, text: str):
    problem = one_problem(tmp_path, text)
    assert problem.file == "acme.yaml"
    assert problem.message.startswith(("a spec must be a mapping", "file is empty"))


def test_five_megabyte_spec_through_load_spec(tmp_path: Path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"name: Acme\ninstructions: hi\n#" + b"x" * 5_000_000 + b"\n")
    with pytest.raises(SpecError) as exc:
        load_spec(path, display="huge.yaml")
    assert len(exc.value.problems) == 1
    assert "a spec may be at most 1,000,000 bytes" in str(exc.value)


def test_malformed_yaml_through_load_spec(tmp_path: Path):
    problem = one_problem(tmp_path, "name: Acme\ninstructions: hi\ntags: [a, b\ncategory: qa\n")
    assert problem.message.startswith("invalid YAML")
    assert problem.line == 4


def test_duplicate_key_through_load_spec(tmp_path: Path):
    problem = one_problem(tmp_path, "name: Acme\ninstructions: a\ninstructions: b\n")
    assert "duplicate key 'instructions' (first defined on line 2)" in problem.message
    assert problem.line == 3


def test_display_defaults_to_the_path(tmp_path: Path):
    path = write(tmp_path, "acme.yaml", "name: Acme\n")
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert exc.value.problems[0].file == str(path)


# --- JSON schema -------------------------------------------------------------------------------


def _mini_validate(instance: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> list[str]:
    """The subset of JSON Schema pydantic emits, for when the `jsonschema` package is absent."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return _mini_validate(instance, root["$defs"][name], root, where)
    errors: list[str] = []
    kinds = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    if "type" in schema:
        wanted = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(
            isinstance(instance, kinds[t]) and not (t in ("integer", "number") and isinstance(instance, bool))
            for t in wanted
        )
        if not ok:
            return [f"{where}: {instance!r} is not of type {wanted}"]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{where}: {instance!r} not in {schema['enum']}")
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{where}: {instance!r} != {schema['const']!r}")
    if isinstance(instance, str):
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errors.append(f"{where}: {instance!r} does not match {schema['pattern']}")
        if len(instance) < schema.get("minLength", 0) or len(instance) > schema.get("maxLength", 1 << 60):
            errors.append(f"{where}: bad length")
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            errors.append(f"{where}: below minimum")
        if "maximum" in schema and instance > schema["maximum"]:
            errors.append(f"{where}: above maximum")
        if "exclusiveMinimum" in schema and instance <= schema["exclusiveMinimum"]:
            errors.append(f"{where}: not above exclusiveMinimum")
    if isinstance(instance, list):
        if len(instance) > schema.get("maxItems", 1 << 60):
            errors.append(f"{where}: too many items")
        if "items" in schema:
            for index, item in enumerate(instance):
                errors += _mini_validate(item, schema["items"], root, f"{where}[{index}]")
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in instance:
                errors.append(f"{where}: {key!r} is required")
        for key, value in instance.items():
            if key in properties:
                errors += _mini_validate(value, properties[key], root, f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: additional property {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += _mini_validate(value, schema["additionalProperties"], root, f"{where}.{key}")
    for sub in schema.get("allOf", []):
        errors += _mini_validate(instance, sub, root, where)
    if "anyOf" in schema and not any(not _mini_validate(instance, s, root, where) for s in schema["anyOf"]):
        errors.append(f"{where}: matches none of anyOf")
    if "oneOf" in schema and sum(not _mini_validate(instance, s, root, where) for s in schema["oneOf"]) != 1:
        errors.append(f"{where}: does not match exactly one of oneOf")
    return errors


def schema_errors(instance: Any) -> list[str]:
    """Validate against the exported schema with `jsonschema` when installed, else the subset above."""
    schema = spec_json_schema()
    try:
        import jsonschema
    except ImportError:
        return _mini_validate(instance, schema, schema)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    return [error.message for error in validator_cls(schema).iter_errors(instance)]


def test_json_schema_is_json_with_every_top_level_field():
    schema = spec_json_schema()
    assert json.loads(json.dumps(schema)) == schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "gptbuilder GPT spec"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(GPTSpec.model_fields)
    for field in ("name", "description", "category", "instructions", "instructions_file", "model", "knowledge",
                  "tools", "curated_answers", "widget", "tests"):
        assert field in schema["properties"]
    assert schema["required"] == ["name"]


def test_json_schema_refs_all_resolve_and_nested_models_forbid_extras():
    schema = spec_json_schema()
    text = json.dumps(schema)
    for name in re.findall(r'"\$ref": "#/\$defs/([^"]+)"', text):
        assert name in schema["$defs"], name
    for name in ("ModelConfig", "KnowledgeConfig", "ActionConfig", "ActionAuth", "BuiltinTool", "WidgetConfig"):
        assert schema["$defs"][name]["additionalProperties"] is False
    assert schema["$defs"]["ModelConfig"]["properties"]["temperature"]["anyOf"][0]["maximum"] == 2
    assert schema["properties"]["category"]["enum"] == list(CATEGORIES)


def test_shipped_example_validates_against_the_json_schema():
    data = parse_yaml((REPO / "gpts" / "assistant.yaml").read_text(encoding="utf-8")).data
    assert schema_errors(data) == []


def test_json_schema_rejects_what_the_loader_rejects():
    assert schema_errors({"name": "Acme", "instructions": "hi", "categori": "qa"})
    assert schema_errors({"name": "Acme", "instructions": "hi", "category": "codng"})
    assert schema_errors({"name": "Acme", "instructions": "hi", "model": {"temperature": 3}})
    assert schema_errors({"instructions": "hi"})


def test_json_schema_accepts_the_shorthand_forms_the_loader_accepts(tmp_path: Path):
    # An editor using the schema must not flag the documented short forms as errors.
    data = {
        "name": "Acme",
        "instructions": "hi",
        "tools": ["calculator", "my_pkg.tools:lookup_order", {"action": {"openapi": "actions/orders.yaml"}}],
        "knowledge": {"files": "docs/*.md"},
        "model": {"stop": "END"},
        "tests": [{"ask": "q", "expect": {"contains": "30 days", "cites": "returns.md"}}],
    }
    GPTSpec.model_validate(data)  # the loader accepts it
    assert schema_errors(data) == []


def test_blank_inline_instructions_are_rejected(tmp_path):
    from gptbuilder.errors import SpecError
    from gptbuilder.spec import load_spec

    path = tmp_path / "blank.yaml"
    path.write_text('name: Blank\ninstructions: "   "\n', encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert [(p.field, p.message) for p in info.value.problems] == [
        ("instructions", "instructions are blank; write what the GPT should do")
    ]
