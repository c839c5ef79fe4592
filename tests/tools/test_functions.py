"""Function tools: `package.module:function` imported, described from its hints and docstring, run safely."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool

from gptbuilder.errors import ToolError
from gptbuilder.spec import FunctionTool
from gptbuilder.tools.functions import function_tool, render, truncate

SAMPLE = "tests.tools.sample_tools"


def call(tool: BaseTool, **args) -> ToolMessage:
    """Invoke `tool` the way an agent does, with a tool call, and return its message."""
    return tool.invoke({"type": "tool_call", "id": "call-1", "name": tool.name, "args": args})


@pytest.fixture
def module_name() -> str:
    """A fresh module name, removed from sys.modules afterwards."""
    name = f"spec_local_{uuid.uuid4().hex[:8]}"
    yield name
    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]


# --- schema and description -------------------------------------------------------------------


def test_schema_and_description_come_from_hints_and_docstring():
    tool = function_tool(f"{SAMPLE}:lookup_order")
    assert tool.name == "lookup_order"
    assert tool.description == "Look up an order's shipping status. Use it when a customer asks where their order is."
    schema = tool.tool_call_schema.model_json_schema()
    assert schema["required"] == ["order_id"]
    assert schema["properties"]["order_id"] == {
        "description": "The order number, like A-1001.", "title": "Order Id", "type": "string"
    }
    assert schema["properties"]["include_history"]["default"] is False
    assert schema["properties"]["carrier"]["enum"] == ["ups", "dhl"]


def test_a_call_returns_the_result_as_text():
    tool = function_tool(f"{SAMPLE}:lookup_order")
    content = tool.invoke({"order_id": "A-1", "include_history": True})
    expected = {"order_id": "A-1", "status": "shipped", "carrier": "ups", "history": ["packed", "shipped"]}
    assert json.loads(content) == expected
    assert function_tool(f"{SAMPLE}:add").invoke({"a": 2, "b": "3"}) == "5"  # arguments are validated and coerced
    assert function_tool(f"{SAMPLE}:nothing").invoke({}) == "(no result)"


def test_from_a_spec_entry():
    entry = FunctionTool.model_validate({"function": f"{SAMPLE}:add"})
    assert function_tool(entry.function).invoke({"a": 1, "b": 1}) == "2"


def test_async_functions_work_both_ways():
    tool = function_tool(f"{SAMPLE}:add_later")
    assert tool.invoke({"a": 2, "b": 5}) == "7"
    assert asyncio.run(tool.ainvoke({"a": 1, "b": 1})) == "2"


def test_langchain_tools_are_accepted_too():
    tool = function_tool(f"{SAMPLE}:shout")
    assert tool.name == "shout" and tool.description == "Repeat the text in capitals."
    assert tool.invoke({"text": "hi"}) == "HI"


# --- failures go back to the model ------------------------------------------------------------


def test_wrong_arguments_are_reported_to_the_model():
    message = call(function_tool(f"{SAMPLE}:add"), a="two")
    assert message.status == "error"
    assert message.content == (
        "invalid arguments for add: a: Input should be a valid integer, unable to parse string as an integer; "
        "b: Field required"
    )


def test_an_exception_becomes_an_error_message(caplog: pytest.LogCaptureFixture):
    message = call(function_tool(f"{SAMPLE}:explode"), reason="tuesdays")
    assert message.status == "error"
    assert message.content == "explode failed: ValueError: cannot handle tuesdays"
    assert "function tool explode raised" in caplog.text  # the traceback goes to the operator's log


def test_a_tool_exception_is_passed_on_as_it_is():
    message = call(function_tool(f"{SAMPLE}:refuse"), reason="no")
    assert (message.status, message.content) == ("error", "refused: no")


def test_a_hanging_function_times_out():
    tool = function_tool(f"{SAMPLE}:sleepy", timeout=0.3)
    started = time.monotonic()
    message = call(tool, seconds=30)
    assert time.monotonic() - started < 2
    assert message.status == "error"
    assert message.content == "sleepy did not finish within 0.3 s and was abandoned; try simpler input"
    assert tool.invoke({"seconds": 0}) == "awake"


def test_a_huge_result_is_truncated():
    content = function_tool(f"{SAMPLE}:huge").invoke({"size": 10 * 1024 * 1024})
    assert content.startswith("x" * 20_000 + "\n[... truncated: showing 20,000 of 10,485,760 characters]")
    assert len(content) < 20_100
    small = function_tool(f"{SAMPLE}:huge", max_result_chars=10).invoke({"size": 11})
    assert small == "xxxxxxxxxx\n[... truncated: showing 10 of 11 characters]"
    assert function_tool(f"{SAMPLE}:huge", max_result_chars=10).invoke({"size": 10}) == "x" * 10


def test_render_and_truncate():
    assert render({"a": [1, "é"]}) == '{"a": [1, "é"]}'
    assert render([1.5, True, Path("a")]) == '[1.5, true, "a"]'
    assert render({1, 2}) == "{1, 2}"
    assert render(FunctionTool(function="a:b")) == '{"function":"a:b"}'
    assert render(None) == "(no result)"
    assert truncate("abc", 3) == "abc"


# --- what the spec author must fix --------------------------------------------------------------


@pytest.mark.parametrize(
    ("dotted", "says"),
    [
        ("tests.tools.sample_tools.add", "is not a function path; write it as 'package.module:function'"),
        ("no_such_package_xyz.tools:lookup", "no module named 'no_such_package_xyz'; install the package"),
        (f"{SAMPLE}:lookup_ordr", "has no function 'lookup_ordr'; did you mean 'lookup_order'?"),
        (f"{SAMPLE}:NOT_A_FUNCTION", "is a int, not a function"),
        (f"{SAMPLE}:Thing", "is a type, not a function"),
        ("textwrap:dedent", "textwrap:dedent: add type hints to text"),
        ("json:dumps", "*args and **kwargs"),
        ("math:sqrt", "not a Python function"),
        (f"{SAMPLE}:untyped", "add type hints to a, e.g. def untyped(order_id: str) -> str"),
        (f"{SAMPLE}:undocumented", "has no docstring; add one saying what it does"),
        (f"{SAMPLE}:star_args", "*args and **kwargs cannot be described to a model"),
    ],
)
def test_problems_name_the_function_and_the_fix(dotted: str, says: str):
    with pytest.raises(ToolError) as caught:
        function_tool(dotted)
    assert says in str(caught.value)
    if ":" in dotted:
        assert str(caught.value).startswith(dotted)


def test_bad_limits_are_refused():
    with pytest.raises(ToolError, match="must be positive"):
        function_tool(f"{SAMPLE}:add", timeout=0)


# --- modules next to the spec -----------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    """Write dedented `text` to `path`, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_module_next_to_the_spec_is_loaded_without_touching_sys_path(tmp_path: Path, module_name: str):
    write(tmp_path / f"{module_name}.py", '''
        def greet(name: str) -> str:
            """Greet someone by name."""
            return f"hello {name}"
    ''')
    before = list(sys.path)
    tool = function_tool(f"{module_name}:greet", base_dir=tmp_path)
    assert tool.invoke({"name": "ada"}) == "hello ada"
    assert sys.path == before
    assert function_tool(f"{module_name}:greet", base_dir=tmp_path).invoke({"name": "bo"}) == "hello bo"


def test_a_package_next_to_the_spec_with_relative_imports(tmp_path: Path, module_name: str):
    write(tmp_path / module_name / "__init__.py", "")
    write(tmp_path / module_name / "helpers.py", "PREFIX = 'order '\n")
    write(tmp_path / module_name / "orders.py", '''
        from .helpers import PREFIX

        def status(order_id: str) -> str:
            """Say an order's status."""
            return PREFIX + order_id + " shipped"
    ''')
    tool = function_tool(f"{module_name}.orders:status", base_dir=tmp_path)
    assert tool.invoke({"order_id": "A-1"}) == "order A-1 shipped"


def test_a_spec_local_module_cannot_shadow_an_imported_one(tmp_path: Path):
    write(tmp_path / "json.py", 'def dumps(x: str) -> str:\n    """Not the real one."""\n    return x\n')
    with pytest.raises(ToolError, match=r"the name 'json' is already taken by .*json/__init__\.py; rename the module"):
        function_tool("json:dumps", base_dir=tmp_path)
    import json as real_json

    assert real_json.dumps([1]) == "[1]"


def test_installed_modules_still_load_with_a_base_dir(tmp_path: Path):
    assert function_tool(f"{SAMPLE}:add", base_dir=tmp_path).invoke({"a": 1, "b": 2}) == "3"


def test_a_module_that_fails_to_import_is_reported(tmp_path: Path, module_name: str):
    write(tmp_path / f"{module_name}.py", "raise RuntimeError('no config')\n")
    with pytest.raises(ToolError, match=f"importing {module_name} failed: RuntimeError: no config"):
        function_tool(f"{module_name}:f", base_dir=tmp_path)
    assert module_name not in sys.modules


def test_a_missing_dependency_inside_the_module_is_told_apart(tmp_path: Path, module_name: str):
    write(tmp_path / f"{module_name}.py", "import not_installed_dep_xyz\n")
    with pytest.raises(ToolError, match=f"importing {module_name} failed: No module named 'not_installed_dep_xyz'"):
        function_tool(f"{module_name}:f", base_dir=tmp_path)


def test_a_missing_local_module_suggests_where_to_put_it(tmp_path: Path):
    with pytest.raises(ToolError, match=f"or put missing_mod_xyz.py next to the spec in {tmp_path}"):
        function_tool("missing_mod_xyz:f", base_dir=tmp_path)
