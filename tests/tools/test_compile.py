"""Spec `tools:` → tools: every kind checks and builds, problems name the entry, approval-needing actions keep their real tool."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gptbuilder.errors import ToolError
from gptbuilder.loader import load_spec
from gptbuilder.spec import ActionConfig, ActionTool, BuiltinTool, FunctionTool
from gptbuilder.tools.compile import ToolProblem, build_tools, check_tool, tool_kind

REPO = Path(__file__).resolve().parents[2]


def copy_orders(gpts_dir):
    (gpts_dir / "actions").mkdir(exist_ok=True)
    shutil.copy(REPO / "gpts" / "actions" / "orders.openapi.yaml", gpts_dir / "actions" / "orders.openapi.yaml")


def spec(write_spec, gpts_dir, tools: str, *, private: bool = True):
    copy_orders(gpts_dir)
    text = f"name: T\ninstructions: x\nallow_private_network: {str(private).lower()}\ntools:\n{tools}"
    return load_spec(write_spec("t", text))


def test_every_kind_of_entry_builds(write_spec, gpts_dir):
    loaded = spec(
        write_spec,
        gpts_dir,
        "  - calculator\n  - {builtin: python, options: {timeout: 5}}\n"
        "  - tests.tools.sample_tools:add\n  - action: {openapi: actions/orders.openapi.yaml}\n",
    )
    names = [t.name for t in build_tools(loaded)]
    assert names[:2] == ["calculator", "python"]
    assert {"getOrder", "listOrders", "cancelOrder"} <= set(names)


def test_actions_needing_approval_are_the_real_tools_marked_for_confirmation(write_spec, gpts_dir):
    tools = {t.name: t for t in build_tools(spec(write_spec, gpts_dir, "  - action: {openapi: actions/orders.openapi.yaml}\n"))}
    cancel = tools["cancelOrder"]
    assert cancel.metadata["requires_confirmation"] is True
    assert (cancel.metadata["method"], cancel.metadata["operation_id"]) == ("POST", "cancelOrder")
    assert "refused" not in cancel.metadata  # no refusing stand-in: the Agent asks the user before running it
    assert tools["getOrder"].metadata["requires_confirmation"] is False


def test_a_missing_secret_fails_at_compile_time_naming_entry_and_variable(write_spec, gpts_dir, monkeypatch):
    monkeypatch.delenv("ACME_TOKEN", raising=False)
    loaded = spec(
        write_spec, gpts_dir,
        "  - action: {openapi: actions/orders.openapi.yaml, auth: {type: bearer, token_env: ACME_TOKEN}}\n",
    )
    with pytest.raises(ToolError, match=r"t: tools\[0\]: .*ACME_TOKEN"):
        build_tools(loaded)


def test_duplicate_tool_names_are_refused(write_spec, gpts_dir):
    with pytest.raises(ToolError, match="two tools are named 'calculator'"):
        build_tools(spec(write_spec, gpts_dir, "  - calculator\n  - calculator\n"))


def test_every_kind_checks_a_good_entry_clean(gpts_dir):
    copy_orders(gpts_dir)
    entries = [BuiltinTool(builtin="python", options={"timeout": 5}), FunctionTool(function="tests.tools.sample_tools:add"),
               ActionTool(action=ActionConfig(openapi="actions/orders.openapi.yaml", confirm=["cancelOrder"]))]
    for entry in entries:
        assert check_tool(entry, folder=gpts_dir, allow_private=True, imports=True) == [], entry
        assert tool_kind(entry).build(entry, folder=gpts_dir, allow_private=True)


def test_checks_name_the_field_of_the_entry(gpts_dir):
    copy_orders(gpts_dir)
    python = BuiltinTool(builtin="python", options={"timeot": 10})
    [problem] = check_tool(python, folder=gpts_dir, allow_private=True)
    assert (problem.field, problem.file) == ("options.timeot", None)
    assert "did you mean 'timeout'?" in problem.message
    action = ActionTool(action=ActionConfig(openapi="actions/orders.openapi.yaml", operations=["getOrdr"]))
    assert check_tool(action, folder=gpts_dir, allow_private=True) == [
        ToolProblem("action.operations[0]", "no operation 'getOrdr' in the document; did you mean 'getOrder'?")
    ]
    [private] = check_tool(action.model_copy(update={"action": ActionConfig(openapi="actions/orders.openapi.yaml")}),
                           folder=gpts_dir, allow_private=False)
    assert (private.file, private.field, private.line) == ("actions/orders.openapi.yaml", "servers.0.url", 12)


def test_function_tools_are_imported_only_when_allowed(gpts_dir):
    missing = FunctionTool(function="gptbuilder_no_such_pkg.mod:run")
    assert check_tool(missing, folder=gpts_dir, allow_private=False) == []
    [problem] = check_tool(missing, folder=gpts_dir, allow_private=False, imports=True)
    assert problem.field == "function" and "no module named 'gptbuilder_no_such_pkg'" in problem.message


def test_an_untrusted_spec_never_imports_a_function_tool_even_if_one_got_past_the_loader(write_spec, gpts_dir):
    import dataclasses
    import sys

    (gpts_dir / "planted.py").write_text("raise SystemExit('imported')\n", encoding="utf-8")
    trusted = load_spec(write_spec("t", "name: T\ninstructions: x\ntools: ['planted:run']\n"))
    with pytest.raises(ToolError, match="tools\\[0\\]: function tools are not allowed in specs saved through the store"):
        build_tools(dataclasses.replace(trusted, trusted=False))
    assert "planted" not in sys.modules
