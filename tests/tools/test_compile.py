"""Spec `tools:` → tools: every kind builds, problems name the entry, approval-needing actions keep their real tool and say so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gptbuilder.errors import ToolError
from gptbuilder.spec import load_spec
from gptbuilder.tools.compile import build_tools

REPO = Path(__file__).resolve().parents[2]


def spec(write_spec, gpts_dir, tools: str, *, private: bool = True):
    (gpts_dir / "actions").mkdir(exist_ok=True)
    shutil.copy(REPO / "gpts" / "actions" / "orders.openapi.yaml", gpts_dir / "actions" / "orders.openapi.yaml")
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
