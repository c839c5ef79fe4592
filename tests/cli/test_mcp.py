"""`gptbuilder mcp ID` as a desktop client runs it: the console script in a fresh process, spoken to over stdio."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

GPTBUILDER = str(Path(sys.executable).with_name("gptbuilder"))
NOISY = """
name: Echo
description: Repeats what you say.
instructions: Be brief.
model: {provider: fake}
"""


def _test_env() -> dict[str, str]:
    """This test's folders and offline settings (the SDK passes a client's child only a few variables otherwise)."""
    return {k: v for k, v in os.environ.items() if k.startswith(("GPTBUILDER_", "HF_", "TRANSFORMERS_")) or k == "PATH"}


def ask(gpts_dir: Path, gpt_id: str, *calls: dict[str, Any]) -> tuple[Any, list[Any]]:
    """Start `gptbuilder mcp gpt_id` as a client would; list its tools, then make each call (conversation ids chained)."""

    async def main() -> tuple[Any, list[Any]]:
        params = StdioServerParameters(command=GPTBUILDER, args=["--gpts", str(gpts_dir), "mcp", gpt_id], env=_test_env(),
                                       cwd=gpts_dir.parent)
        results: list[Any] = []
        with anyio.fail_after(120):
            async with stdio_client(params, errlog=sys.stderr) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                listed = await session.list_tools()
                for call in calls:
                    arguments = dict(call)
                    if arguments.pop("follow", False):
                        arguments["conversation"] = results[-1].structured_content["conversation"]
                    results.append(await session.call_tool(f"ask_{gpt_id}", arguments))
        return listed, results

    return anyio.run(main)


def test_one_gpt_over_stdio_with_a_conversation(write_spec, gpts_dir):
    write_spec("echo", NOISY)
    listed, (first, second, unknown) = ask(
        gpts_dir, "echo",
        {"message": "hello"},
        {"message": "again", "follow": True},
        {"message": "hi", "conversation": "not-a-conversation"},
    )
    [tool] = listed.tools
    assert tool.name == "ask_echo" and "Repeats what you say." in tool.description
    assert first.structured_content["answer"] == "You said: hello"
    assert first.content[0].text.startswith("You said: hello")
    assert second.structured_content["conversation"] == first.structured_content["conversation"]
    assert unknown.is_error and "no conversation 'not-a-conversation'" in unknown.content[0].text


def test_an_unknown_gpt_fails_before_serving(write_spec, gpts_dir):
    write_spec("echo", NOISY)
    done = subprocess.run([GPTBUILDER, "--gpts", str(gpts_dir), "mcp", "ecko"], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=_test_env(), cwd=gpts_dir.parent)
    assert done.returncode == 1
    assert "ecko" in done.stderr and "echo" in done.stderr  # did you mean
    assert done.stdout == ""  # nothing that a client would read as protocol
