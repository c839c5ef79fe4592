"""simonw's `llm` CLI against a live server, through its extra-openai-models.yaml: a chat and `llm --schema`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import KEY
from tests.server.test_structured_output import ASK

pytestmark = pytest.mark.needs_module("llm", extra="test")


def llm_cli(user_dir: Path, base_url: str, gpt_id: str, key: str = KEY):
    """A runner of the `llm` command whose only extra model is ``gpt_id`` on the server, set up as the README says."""
    (user_dir / "extra-openai-models.yaml").write_text(
        f"- model_id: {gpt_id}\n  model_name: {gpt_id}\n  api_base: {base_url}\n  api_key_name: gptbuilder\n  supports_schema: true\n",
        encoding="utf-8",
    )
    command = shutil.which("llm", path=str(Path(sys.executable).parent)) or "llm"
    env = {**os.environ, "LLM_USER_PATH": str(user_dir)}

    def run(*args: str) -> str:
        done = subprocess.run([command, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    run("keys", "set", "gptbuilder", "--value", key)
    return run


def test_prompt_and_schema(served, tmp_path):
    llm = llm_cli(tmp_path, served.base_url, "city")
    assert json.loads(llm("-m", "city", "--no-log", "Capital of France?")) == {"city": "Paris", "country": "France"}
    answer = llm("-m", "city", "--schema", "city, country", "Capital of France?")
    assert json.loads(answer) == {"city": "Paris", "country": "France"}
    sent = served.calls("city")[-1]["response_format"]
    assert sent["type"] == "json_schema" and set(sent["json_schema"]["schema"]["properties"]) == {"city", "country"}


@pytest.mark.slow
def test_schema_on_the_embedded_model(smol, tmp_path):
    """SmolLM2 under the grammar of llm's concise schema: JSON with those keys."""
    llm = llm_cli(tmp_path, smol, "smol", key="unused")
    answer = json.loads(llm("-m", "smol", "--schema", "city, country, population int", "-o", "temperature", "0",
                            ASK[0]["content"]))
    assert set(answer) == {"city", "country", "population"} and isinstance(answer["population"], int)
