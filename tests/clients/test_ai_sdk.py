"""The Vercel AI SDK (Node, @ai-sdk/openai-compatible) against a live server: generateObject and streamText with a tool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import KEY, require

PROJECT = Path(__file__).parent / "node"  # package.json, script.mjs; .ci/run installs its node_modules


def run_script(mode: str, base_url: str, model: str, key: str = KEY) -> dict[str, Any]:
    """Run script.mjs in ``mode`` against the server and return the JSON it printed."""
    node = shutil.which("node")
    require("needs Node.js 18+: apt-get install nodejs npm" if node is None else None)
    require(None if (PROJECT / "node_modules" / "ai").is_dir() else f"needs the AI SDK: cd {PROJECT} && npm ci")
    env = {**os.environ, "GPTBUILDER_URL": base_url, "GPTBUILDER_MODEL": model, "GPTBUILDER_KEY": key}
    done = subprocess.run([str(node), "script.mjs", mode], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_generate_object_sends_the_zod_schema_and_gets_the_object(served):
    result = run_script("object", served.base_url, "city")
    assert result["object"] == {"city": "Paris", "country": "France"}
    assert result["finishReason"] == "stop" and result["usage"]["outputTokens"] > 0
    sent = served.calls("city")[-1]["response_format"]
    assert sent["type"] == "json_schema" and set(sent["json_schema"]["schema"]["properties"]) == {"city", "country"}


def test_stream_text_runs_the_callers_tool_and_streams_the_answer(served):
    result = run_script("tools", served.base_url, "weather")
    assert result["calls"] == [{"city": "Paris"}], "the SDK ran its get_weather with the model's arguments"
    assert [step["finishReason"] for step in result["steps"]] == ["tool-calls", "stop"]
    assert result["steps"][0]["toolCalls"] == ["get_weather"]
    assert result["text"] == "Sunny in Paris." and result["deltas"] > 1


@pytest.mark.slow
def test_generate_object_on_the_embedded_model(smol):
    """SmolLM2 under the schema's grammar: an object the zod schema accepts (the SDK validates it)."""
    result = run_script("object", smol, "smol", key="unused")
    assert isinstance(result["object"]["city"], str) and isinstance(result["object"]["country"], str)
