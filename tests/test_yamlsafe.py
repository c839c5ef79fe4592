"""yamlsafe: untrusted spec YAML is size-capped, plain-tagged, duplicate-free and bomb-proof."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gptbuilder.errors import SpecError, SpecProblem
from gptbuilder.yamlsafe import MAX_BYTES, MAX_NODES, YamlDocument, parse_yaml, read_yaml

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def only_problem(exc: pytest.ExceptionInfo[SpecError]) -> SpecProblem:
    assert len(exc.value.problems) == 1, exc.value.problems
    return exc.value.problems[0]


def parse_error(text: str) -> SpecProblem:
    with pytest.raises(SpecError) as exc:
        parse_yaml(text, display="acme.yaml")
    problem = only_problem(exc)
    assert problem.file == "acme.yaml"
    return problem


# --- plain documents ---------------------------------------------------------------------------


def test_parses_a_plain_mapping_with_lines_of_keys_and_items():
    doc = parse_yaml("name: Acme\nmodel:\n  provider: local\ntags:\n  - a\n  - b\n")
    assert isinstance(doc, YamlDocument)
    assert doc.data == {"name": "Acme", "model": {"provider": "local"}, "tags": ["a", "b"]}
    assert doc.lines[("name",)] == 1
    assert doc.lines[("model",)] == 2
    assert doc.lines[("model", "provider")] == 3
    assert doc.lines[("tags", 0)] == 5
    assert doc.lines[("tags", 1)] == 6


def test_line_of_falls_back_to_the_deepest_known_prefix():
    doc = parse_yaml("name: Acme\nmodel:\n  provider: local\n")
    assert doc.line_of(("model", "provider")) == 3
    assert doc.line_of(("model", "temperature")) == 2  # not written: the 'model:' line
    assert doc.line_of(("model", "options", "x")) == 2
    assert doc.line_of(("nothing",)) is None
    assert doc.line_of(()) is None


def test_accepts_utf8_bom_crlf_and_unicode():
    doc = parse_yaml("\ufeffname: Acme 👟\r\ninstructions: héllo\r\n")
    assert doc.data == {"name": "Acme 👟", "instructions": "héllo"}


# --- safe loading: no python tags, no custom tags -------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "!!python/object:os.system {}",
        "!!python/object/apply:os.system ['echo pwned']",
        "!!python/object/new:os.system ['echo pwned']",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!python/tuple [1, 2]",
    ],
)
def test_python_tags_are_rejected_with_a_clear_message(value: str):
    problem = parse_error(f"name: Acme\ninstructions: {value}\n")
    assert "python/" in problem.message
    assert "is not allowed" in problem.message
    assert "only plain YAML values" in problem.message
    assert problem.line == 2
    assert problem.field == ""


def test_python_object_tag_never_runs_code(tmp_path: Path):
    marker = tmp_path / "pwned"
    text = f"name: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{marker}']]\n"
    with pytest.raises(SpecError):
        parse_yaml(text)
    assert not marker.exists()


def test_custom_local_tag_is_rejected():
    problem = parse_error("name: !secret Acme\n")
    assert "'!secret' is not allowed" in problem.message
    assert problem.line == 1


# --- duplicate keys ----------------------------------------------------------------------------


def test_duplicate_top_level_key_is_rejected_with_both_lines():
    problem = parse_error("name: Acme\ninstructions: hi\nname: Other\n")
    assert "duplicate key 'name'" in problem.message
    assert "first defined on line 1" in problem.message
    assert problem.line == 3
    assert str(problem) == (
        "acme.yaml: invalid YAML: duplicate key 'name' (first defined on line 1) (line 3)"
    )


def test_duplicate_nested_key_is_rejected():
    problem = parse_error("name: Acme\nmodel:\n  provider: local\n  temperature: 0.1\n  provider: openai\n")
    assert "duplicate key 'provider' (first defined on line 3)" in problem.message
    assert problem.line == 5


def test_duplicate_key_inside_a_list_item_is_rejected():
    problem = parse_error("curated_answers:\n  - question: a\n    answer: b\n    question: c\n")
    assert "duplicate key 'question'" in problem.message
    assert problem.line == 4


def test_same_key_in_different_mappings_is_fine():
    doc = parse_yaml("a: {name: 1}\nb: {name: 2}\nc:\n  - {name: 3}\n  - {name: 4}\n")
    assert doc.data["c"] == [{"name": 3}, {"name": 4}]


def test_non_scalar_key_is_rejected():
    problem = parse_error("? [a, b]\n: 1\n")
    assert "a key must be a plain value" in problem.message
    assert problem.line == 1


# --- aliases -----------------------------------------------------------------------------------


def test_billion_laughs_is_rejected_quickly():
    started = time.perf_counter()
    problem = parse_error(BILLION_LAUGHS)
    assert time.perf_counter() - started < 2
    assert f"more than {MAX_NODES:,} values through aliases" in problem.message
    assert "alias bomb" in problem.message


def test_mapping_alias_bomb_is_rejected():
    lines = ["l0: &l0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}"]
    for level in range(1, 8):
        refs = ", ".join(f"k{n}: *l{level - 1}" for n in range(10))
        lines.append(f"l{level}: &l{level} {{{refs}}}")
    problem = parse_error("\n".join(lines) + "\n")
    assert "alias bomb" in problem.message


def test_small_legitimate_anchor_and_alias_still_work():
    doc = parse_yaml(
        "starters: &s ['Where is my order?', 'How do returns work?']\n"
        "name: &n Acme\n"
        "title: *n\n"
        "again: *s\n"
    )
    assert doc.data["title"] == "Acme"
    assert doc.data["again"] == ["Where is my order?", "How do returns work?"]


def test_many_small_aliases_below_the_limit_are_fine():
    items = ", ".join(["*x"] * 200)
    doc = parse_yaml(f"x: &x [1, 2, 3]\ny: [{items}]\n")
    assert len(doc.data["y"]) == 200
    assert doc.data["y"][0] == [1, 2, 3]


def test_merge_key_with_an_anchor_works():
    # `<<: *defaults` is the common legitimate use of anchors; the SafeLoader supports it.
    doc = parse_yaml(
        "defaults: &defaults\n"
        "  provider: local\n"
        "  temperature: 0.2\n"
        "model:\n"
        "  <<: *defaults\n"
        "  temperature: 0.7\n"
    )
    assert doc.data["model"] == {"provider": "local", "temperature": 0.7}


def test_recursive_alias_is_rejected():
    # A self-referencing value cannot be serialised (JSON, pydantic dumps) and is never a real spec.
    with pytest.raises(SpecError) as exc:
        parse_yaml("name: Acme\ntools:\n  - builtin: python\n    options: &loop {again: *loop}\n")
    assert "alias" in only_problem(exc).message


# --- not a mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- name: Acme\n- name: Other\n", "list"), ("just a sentence\n", "str"), ("42\n", "int"), ("~\n", "nothing")],
)
def test_non_mapping_documents_are_rejected(text: str, kind: str):
    problem = parse_error(text)
    assert problem.message == f"a spec must be a mapping of fields (name: ..., instructions: ...), got {kind}"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_documents_are_rejected(text: str):
    problem = parse_error(text)
    assert problem.message.startswith("file is empty")
    assert "'name'" in problem.message


def test_document_marker_without_content_is_rejected():
    problem = parse_error("---\n")
    assert "a spec must be a mapping" in problem.message or problem.message.startswith("file is empty")


def test_several_documents_are_rejected():
    problem = parse_error("name: a\n---\nname: b\n")
    assert problem.message.startswith("invalid YAML")
    assert problem.line == 2


# --- malformed YAML ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: Acme\ninstructions: hi\ntags: [a, b\ncategory: qa\n", 4),
        ("name: Acme\n  instructions: hi\n", 2),
        ("name: Acme\ninstructions: hi\n\tcategory: qa\n", 3),
        ("name: 'unterminated\n", 2),
        ("name: Acme\ninstructions: hi\ndescription: \"a\" b\n", 3),
    ],
)
def test_malformed_yaml_reports_the_line(text: str, line: int):
    problem = parse_error(text)
    assert problem.message.startswith("invalid YAML: ")
    assert problem.line == line
    assert str(problem).endswith(f"(line {line})")


def test_deeply_nested_document_is_rejected_without_crashing():
    problem = parse_error("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deeply" in problem.message


# --- files -------------------------------------------------------------------------------------


def test_read_yaml_reads_a_file(tmp_path: Path):
    path = tmp_path / "acme.yaml"
    path.write_text("name: Acme\ninstructions: hi\n", encoding="utf-8")
    doc = read_yaml(path)
    assert doc.data == {"name": "Acme", "instructions": "hi"}


def test_five_megabyte_spec_is_rejected(tmp_path: Path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: Acme\ninstructions: |\n" + ("  " + "x" * 98 + "\n") * 50_000, encoding="utf-8")
    assert path.stat().st_size > 5_000_000
    with pytest.raises(SpecError) as exc:
        read_yaml(path, display="huge.yaml")
    problem = only_problem(exc)
    assert problem.file == "huge.yaml"
    assert f"at most {MAX_BYTES:,} bytes" in problem.message
    assert f"{path.stat().st_size:,} bytes" in problem.message


def test_size_limit_boundary(tmp_path: Path):
    body = "name: Acme\ninstructions: hi\n# "
    exact = tmp_path / "exact.yaml"
    exact.write_text(body + "x" * (200 - len(body)), encoding="utf-8")
    assert exact.stat().st_size == 200
    assert read_yaml(exact, max_bytes=200).data["name"] == "Acme"
    over = tmp_path / "over.yaml"
    over.write_text(body + "x" * (201 - len(body)), encoding="utf-8")
    with pytest.raises(SpecError, match="at most 200 bytes"):
        read_yaml(over, max_bytes=200)


def test_one_megabyte_default_limit(tmp_path: Path):
    assert MAX_BYTES == 1_000_000
    path = tmp_path / "big.yaml"
    path.write_bytes(b"name: Acme\n#" + b"x" * MAX_BYTES)
    with pytest.raises(SpecError, match="a spec may be at most 1,000,000 bytes"):
        read_yaml(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(SpecError) as exc:
        read_yaml(tmp_path / "nope.yaml", display="nope.yaml")
    assert str(only_problem(exc)) == "nope.yaml: file not found"


def test_folder_instead_of_file(tmp_path: Path):
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(SpecError) as exc:
        read_yaml(tmp_path / "dir.yaml", display="dir.yaml")
    assert str(only_problem(exc)) == "dir.yaml: is a folder, not a spec file"


def test_non_utf8_file(tmp_path: Path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: Acme\ninstructions: caf\xe9\n")
    with pytest.raises(SpecError) as exc:
        read_yaml(path, display="latin.yaml")
    problem = only_problem(exc)
    assert problem.message == "not UTF-8 text (bad byte at offset 28)"


def test_display_defaults_to_the_path(tmp_path: Path):
    path = tmp_path / "acme.yaml"
    path.write_text("- a\n", encoding="utf-8")
    with pytest.raises(SpecError) as exc:
        read_yaml(path)
    assert only_problem(exc).file == str(path)


@pytest.mark.parametrize("text", ["name: x\n\x1f", "name: \x00x\n", "instructions: \x07\n"])
def test_control_characters_are_a_spec_error_not_a_crash(text: str):
    # found by tests/security/test_fuzz.py: the YAML reader refused them before the parse was guarded
    problem = parse_error(text)
    assert problem.message.startswith("invalid YAML: ") and "special characters are not allowed" in problem.message
