"""spec: the schema of one GPT file: field checks, did-you-mean, tool entry forms and the JSON Schema for editors."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gptbuilder.errors import SpecError, SpecProblem, did_you_mean
from gptbuilder.spec import (
    BUILTIN_TOOLS,
    CATEGORIES,
    ActionTool,
    BuiltinTool,
    FunctionTool,
    GPTSpec,
    spec_json_schema,
)
from gptbuilder.yamlsafe import parse_yaml
from tests.test_loader import MINIMAL, by_field, load, one_problem, problems

REPO = Path(__file__).resolve().parents[1]

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
    (tmp_path / "actions").mkdir()
    shutil.copy(REPO / "gpts" / "actions" / "orders.openapi.yaml", tmp_path / "actions" / "orders.yaml")
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
        allow_private_network: true  # the demo orders service listens on 127.0.0.1
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


def test_tool_entries_of_every_form_parse():
    # The schema alone: neither the module nor the OpenAPI file has to exist for the entries to parse.
    spec = GPTSpec.model_validate(parse_yaml(textwrap.dedent(
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
        """
    )).data)
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
        "or a mapping with 'action', 'mcp', 'function' or 'builtin'"
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
    found = problems(tmp_path, 'name: Blank\ninstructions: "   "\n')
    assert [(p.field, p.message) for p in found] == [("instructions", "instructions are blank; write what the GPT should do")]


def test_builtin_tool_names_come_from_one_table():
    from gptbuilder.tools.builtin import BUILTINS

    schema = spec_json_schema()
    assert schema["$defs"]["BuiltinTool"]["properties"]["builtin"]["enum"] == list(BUILTIN_TOOLS)
    shorthand = [s for s in schema["properties"]["tools"]["items"]["anyOf"] if "enum" in s]
    assert shorthand == [{"enum": list(BUILTIN_TOOLS), "type": "string"}]
    assert set(BUILTINS) == set(BUILTIN_TOOLS)  # every name has an implementation, and nothing else does
