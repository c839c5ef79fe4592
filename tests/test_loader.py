"""loader: a spec file read safely, its files and plugins checked, every problem reported at once in line order."""

from __future__ import annotations

import re
import shutil
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import gptbuilder.models.registry as registry
from gptbuilder.errors import SpecError, SpecProblem
from gptbuilder.loader import LoadedSpec, SpecReport, check_spec, load_spec
from gptbuilder.models.registry import Provider, register_provider, unregister_provider

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


def report(folder: Path, text: str, name: str = "acme.yaml") -> SpecReport:
    """What `gptbuilder validate` sees: every error and warning, with function tools imported."""
    return check_spec(write(folder, name, text), display=name)


def with_orders_doc(folder: Path, relative: str = "actions/orders.yaml") -> str:
    """The shipped demo OpenAPI document (servers on 127.0.0.1, so specs need allow_private_network)."""
    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "gpts" / "actions" / "orders.openapi.yaml", folder / relative)
    return relative


def test_shipped_example_loads():
    loaded = load_spec(REPO / "gpts" / "assistant.yaml")
    assert loaded.id == "assistant"
    assert loaded.spec.name == "Helpful Assistant"
    assert loaded.instructions.startswith("You are a helpful, friendly assistant.")


def test_resolve_stays_inside_the_folder(tmp_path: Path):
    loaded = load(tmp_path, MINIMAL)
    assert loaded.resolve("docs/a.md") == tmp_path / "docs" / "a.md"
    with pytest.raises(ValueError, match="may not leave"):
        loaded.resolve("../a.md")


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


# --- tool checks: what compiling would refuse is found when loading --------------------------------


def test_misspelt_builtin_option_gets_did_you_mean_with_its_line(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "tools:\n  - calculator\n  - builtin: python\n    options: {timeot: 10}\n")
    assert problem.field == "tools[1].options.timeot"
    assert problem.message.startswith("unknown option 'timeot'; did you mean 'timeout'?")
    assert "options are: timeout, memory_mb, max_output_chars" in problem.message
    assert problem.line == 6


def test_builtin_option_out_of_range_and_options_on_a_tool_without_any(tmp_path: Path):
    found = problems(tmp_path, MINIMAL + "tools:\n  - {builtin: python, options: {timeout: 0}}\n"
                                         "  - {builtin: calculator, options: {precision: 3}}\n")
    assert [(p.field, p.line) for p in found] == [("tools[0].options.timeout", 4), ("tools[1].options.precision", 5)]
    assert found[0].message == "Input should be greater than 0"
    assert found[1].message == "unknown option 'precision'; it takes no options"


def test_action_whose_openapi_file_is_missing(tmp_path: Path):
    problem = one_problem(tmp_path, MINIMAL + "tools:\n  - action:\n      openapi: actions/missing.yaml\n")
    assert problem.field == "tools[0].action.openapi"
    assert problem.message.startswith("OpenAPI file not found: actions/missing.yaml")
    assert problem.line == 5


def test_unknown_operation_ids_get_did_you_mean_at_their_list_item(tmp_path: Path):
    doc = with_orders_doc(tmp_path)
    found = problems(
        tmp_path,
        MINIMAL + "allow_private_network: true\ntools:\n  - action:\n"
        f"      openapi: {doc}\n      operations: [getOrder, listOrder]\n"
        "      confirm:\n        - getOrder\n        - cancelOrdr\n",
    )
    assert [(p.field, p.message, p.line) for p in found] == [
        ("tools[0].action.operations[1]", "no operation 'listOrder' in the document; did you mean 'listOrders'?", 7),
        ("tools[0].action.confirm[1]", "no operation 'cancelOrdr' in the document; did you mean 'cancelOrder'?", 10),
    ]


def test_a_valid_action_loads_and_its_document_is_a_source(tmp_path: Path):
    doc = with_orders_doc(tmp_path)
    loaded = load(tmp_path, MINIMAL + f"allow_private_network: true\ntools:\n  - action: {{openapi: {doc}, confirm: [cancelOrder]}}\n")
    assert loaded.sources == (tmp_path / "acme.yaml", tmp_path / doc)  # the store re-reads the spec when it changes


def test_action_auth_settings_are_checked(tmp_path: Path):
    doc = with_orders_doc(tmp_path)
    text = MINIMAL + f"allow_private_network: true\ntools:\n  - action: {{openapi: {doc}, auth: {{type: bearer}}}}\n"
    problem = one_problem(tmp_path, text)
    assert (problem.field, problem.message, problem.line) == ("tools[0].action.auth.token_env", "bearer auth needs 'token_env'", 5)


def test_problems_inside_the_openapi_document_are_shown_in_that_file_after_the_spec(tmp_path: Path):
    write(tmp_path, "gpts/actions/api.yaml", "openapi: 3.1.0\ninfo: {title: T, version: '1'}\n"
          "servers: [{url: 'https://api.example.com'}]\npaths:\n  /a:\n    get:\n      responses: {'200': {description: ok}}\n")
    found = problems(tmp_path, MINIMAL + "categori: qa\ntools:\n  - action: {openapi: actions/api.yaml}\n", name="gpts/acme.yaml")
    assert [(p.file, p.field, p.line) for p in found] == [
        ("gpts/acme.yaml", "categori", 3),
        ("gpts/actions/api.yaml", "paths./a.get", 6),
    ]
    assert "GET /a has no operationId" in found[1].message


def test_private_server_without_the_flag_is_reported(tmp_path: Path):
    doc = with_orders_doc(tmp_path)
    found = problems(tmp_path, MINIMAL + f"tools:\n  - action: {{openapi: {doc}}}\n")
    assert {(p.file, p.field) for p in found} == {(doc, "servers.0.url")}
    assert "allow_private_network: true" in found[0].message


def test_function_tools_are_imported_by_validation_only(tmp_path: Path):
    text = MINIMAL + "tools:\n  - tests.tools.sample_tools:add\n  - gptbuilder_no_such_pkg.tools:lookup\n"
    loaded = load(tmp_path, text)  # loading never runs the spec's code; compiling imports it
    assert len(loaded.spec.tools) == 2
    checked = report(tmp_path, text)
    assert checked.loaded is None
    assert [(p.field, p.line) for p in checked.errors] == [("tools[1].function", 5)]
    assert "no module named 'gptbuilder_no_such_pkg'" in checked.errors[0].message


def test_function_without_a_docstring_is_reported(tmp_path: Path):
    write(tmp_path, "acme_tools.py", "def lookup(order_id: str) -> str:\n    return order_id\n")
    checked = report(tmp_path, MINIMAL + "tools: ['acme_tools:lookup']\n")
    assert [(p.field, p.line) for p in checked.errors] == [("tools[0].function", 3)]
    assert "has no docstring" in checked.errors[0].message


def test_a_tool_check_that_crashes_is_a_problem_not_a_traceback(tmp_path: Path, monkeypatch):
    from gptbuilder.tools import builtin

    def crash(*args, **kwargs):
        raise RuntimeError("check bug")

    monkeypatch.setattr(builtin.BuiltinKind, "check", crash)
    problem = one_problem(tmp_path, MINIMAL + "tools: [calculator]\n")
    assert problem.field == "tools[0]" and "check bug" in problem.message


# --- every problem at once, in line order ---------------------------------------------------------


def test_missing_instructions_is_reported_with_the_other_errors(tmp_path: Path):
    found = problems(tmp_path, "name: Acme\ncategory: codng\n")
    assert [(p.field, p.line) for p in found] == [("", None), ("category", 2)]
    assert found[0].message == "give the GPT 'instructions' (text) or 'instructions_file' (a path)"


def test_every_kind_of_problem_at_once_in_line_order(tmp_path: Path):
    doc = with_orders_doc(tmp_path)
    found = problems(
        tmp_path,
        f"""\
        name: Acme
        model:
          provider: lokal
        knowledge:
          files: ['../outside/*.md']
          search: hybird
        allow_private_network: true
        tools:
          - {{builtin: python, options: {{timeot: 10}}}}
          - action: {{openapi: actions/missing.yaml}}
          - action: {{openapi: {doc}, confirm: [cancelOrdr]}}
          - calculater
        categori: qa
        """,
        name="Acme.yaml",
    )
    assert [(p.field, p.line) for p in found] == [
        ("id", None),
        ("", None),  # no instructions: found although other fields are wrong too
        ("model.provider", 3),
        ("knowledge.files[0]", 5),
        ("knowledge.search", 6),
        ("tools[0].options.timeot", 9),
        ("tools[1].action.openapi", 10),
        ("tools[2].action.confirm[0]", 11),
        ("tools[3].builtin", 12),
        ("categori", 13),
    ]


# --- knowledge globs that match nothing: a warning -----------------------------------------------


def test_a_glob_that_matches_no_file_is_a_warning(tmp_path: Path):
    write(tmp_path, "docs/guide/returns.md", "# Returns\n")
    text = MINIMAL + "knowledge:\n  files:\n    - docs/**/*.md\n    - faq/*.md\n"
    checked = report(tmp_path, text)
    assert checked.errors == () and checked.loaded is not None
    assert [(p.field, p.line) for p in checked.warnings] == [("knowledge.files[1]", 6)]
    assert checked.warnings[0].message.startswith("'faq/*.md' matches no file")
    assert load(tmp_path, text).spec.knowledge.files == ["docs/**/*.md", "faq/*.md"]  # loading does not look


def test_a_folder_is_not_a_knowledge_file(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    checked = report(tmp_path, MINIMAL + "knowledge: {files: [docs]}\n")
    assert [p.field for p in checked.warnings] == ["knowledge.files[0]"]


# ----- trust levels (issue 12): what a spec saved through the store may not use ----------------------


def test_an_untrusted_spec_gets_every_trust_problem_at_once_by_line(tmp_path: Path):
    from gptbuilder.settings import TrustPolicy

    path = write(tmp_path, "shop.yaml", """\
        name: Shop
        instructions_file: /etc/hostname
        allow_private_network: true
        model: {provider: openai, name: gpt-test, base_url: "http://10.0.0.5:8000/v1", api_key_env: SHOP_KEY}
        tools:
          - calculator
          - my.tools:lookup
        """)
    report = check_spec(path, display="gpts/shop.yaml", trusted=False, policy=TrustPolicy())
    assert [(p.field, p.line) for p in report.errors] == [
        ("instructions_file", 2),  # the loader's own check: absolute paths never load
        ("allow_private_network", 3),
        ("model.base_url", 4),
        ("model.api_key_env", 4),
        ("tools[1]", 7),
    ]
    assert all(p.file == "gpts/shop.yaml" for p in report.errors)
    assert "GPTBUILDER_ALLOWED_BASE_URLS=http://10.0.0.5:8000/v1" in str(report.errors[2])
    assert "GPTBUILDER_ALLOWED_SECRET_ENVS=SHOP_KEY" in str(report.errors[3])
    listed = TrustPolicy(base_urls=("http://10.0.0.5:8000",), secret_envs=frozenset({"SHOP_KEY"}))
    again = check_spec(path, display="gpts/shop.yaml", trusted=False, policy=listed)
    assert [p.field for p in again.errors] == ["instructions_file", "allow_private_network", "tools[1]"]
    assert check_spec(path, trusted=True, deep=False).errors[0].field == "instructions_file"  # trusted: only the path rule


def test_an_untrusted_model_path_is_never_opened(tmp_path: Path):
    secret = tmp_path / "secret.gguf"
    secret.write_bytes(b"CANARY-first-bytes" * 4)
    path = write(tmp_path, "peek.yaml", f"name: Peek\ninstructions: x\nmodel: {{provider: local, name: '{secret}'}}\n")
    trusted = check_spec(path, trusted=True)
    untrusted = check_spec(path, trusted=False)
    assert [p.field for p in untrusted.errors] == ["model.name"]
    assert "CANARY" not in str(untrusted.errors) and "is a path" in str(untrusted.errors[0])
    assert [p.field for p in trusted.errors] == ["model.name"]  # the operator's spec: the provider's own check


def test_the_marker_beside_a_spec_makes_it_untrusted_and_is_one_of_its_sources(tmp_path: Path):
    from gptbuilder.trust import mark_untrusted

    path = write(tmp_path, "tool.yaml", "name: Tool\ninstructions: x\nmodel: {provider: fake}\n")
    assert load_spec(path).trusted
    marker = mark_untrusted(path)
    assert marker.name == "tool.untrusted"
    loaded = load_spec(path)
    assert not loaded.trusted and marker in loaded.sources  # deleting it changes the stamps the store watches
    path.write_text(path.read_text() + "tools: ['os:system']\n")
    with pytest.raises(SpecError, match=r"tools\[0\]: function tools .* deleting .*tool.untrusted"):
        load_spec(path)
    marker.unlink()
    assert load_spec(path).trusted


@pytest.mark.parametrize("url, prefix, allowed", [
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000", True),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/", True),
    ("https://api.example.com/v1", "https://api.example.com", True),
    ("https://api.example.com:443/v1", "https://api.example.com", True),
    ("http://127.0.0.1:80001/v1", "http://127.0.0.1:8000", False),
    ("https://api.example.com.evil.net/v1", "https://api.example.com", False),
    ("http://api.example.com/v1", "https://api.example.com", False),
    ("https://api.example.com@evil.net/v1", "https://api.example.com", False),
    ("https://api.example.com/v10", "https://api.example.com/v1", False),
])
def test_base_url_prefixes_match_by_scheme_host_port_and_path(url, prefix, allowed):
    from gptbuilder.trust import url_allowed

    assert url_allowed(url, prefix) is allowed


def test_the_trust_policy_comes_from_the_environment():
    from gptbuilder.settings import TrustPolicy

    policy = TrustPolicy.from_env({"GPTBUILDER_ALLOWED_BASE_URLS": " http://a:1/v1, ,https://b ",
                                   "GPTBUILDER_ALLOWED_SECRET_ENVS": "A_KEY,B_KEY"})
    assert policy == TrustPolicy(("http://a:1/v1", "https://b"), frozenset({"A_KEY", "B_KEY"}))
    assert TrustPolicy.from_env({}) == TrustPolicy()  # nothing allowed unless the operator says so
