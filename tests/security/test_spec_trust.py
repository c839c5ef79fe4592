"""Spec trust levels, against the store's `save_spec` on a live `serve` (Gradio's HTTP API), as a key holder would.

The attacks (issue 12): `save_spec` saved any spec for any key, so `tools: ['llm.cli:_tools_from_code']`
ran code in the server, `model: {base_url: <attacker>, api_key_env: GPTBUILDER_ADMIN_API_KEYS}` sent the
admin key away, `model.name: /abs/path` echoed the file's first bytes, and `knowledge.files` or
`instructions_file` read another GPT's files. Specs saved through the store are now untrusted, stay so
after a restart (the `<id>.untrusted` marker), and only the operator's own files on disk are trusted.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner

from gptbuilder.cli import app as cli
from gptbuilder.server.config import ServerConfig
from gptbuilder.settings import ALLOWED_BASE_URLS_ENV, ALLOWED_SECRET_ENVS_ENV
from gptbuilder.store import Store
from tests.fake_openai_server import FakeOpenAIServer
from tests.server.conftest import ECHO, live, make_app  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[2]
CANARY = "CANARY-7f3a-other-gpts-secret"
PLAIN = "name: Mine\ninstructions: Be brief.\nmodel: {provider: fake}\n"


@pytest.fixture
def store(write_spec, gpts_dir, make_app, live):
    """A keyless store on loopback (every caller may build), beside an operator GPT with private knowledge."""
    write_spec("echo", ECHO)
    (gpts_dir / "knowledge" / "acme").mkdir(parents=True)
    (gpts_dir / "knowledge" / "acme" / "internal.md").write_text(f"# Internal\n{CANARY}\n", encoding="utf-8")
    write_spec("acme", "name: Acme\ninstructions: x\nmodel: {provider: fake}\nknowledge: {files: [knowledge/acme/*.md]}\n")
    server = live(make_app(ServerConfig(), ui=True))
    httpx.get(f"{server.url}/gradio_api/startup-events", timeout=30).raise_for_status()  # as the page does (no lifespan here)
    return server


@pytest.fixture
def attacker():
    """A loopback OpenAI-compatible server that records every request (and the key it was sent)."""
    with FakeOpenAIServer(api_key=None, models=None) as server:
        yield server


def save(store, gpt_id: str, text: str) -> dict:
    """`save_spec` over Gradio's HTTP API, as a script with a key would call it (gradio_client would take the
    result's `path` for a file to download)."""
    with httpx.Client(base_url=store.url, timeout=30) as http:
        started = http.post("/gradio_api/call/save_spec", json={"data": [gpt_id, text, ""]})
        started.raise_for_status()
        stream = http.get(f"/gradio_api/call/save_spec/{started.json()['event_id']}").text
    event, data = [line.split(": ", 1)[1] for line in stream.strip().splitlines()[-2:]]
    assert event == "complete", stream
    return json.loads(data)[0]


def refused(result: dict, field: str) -> str:
    """The problem the store reported at ``field`` (the spec was not saved)."""
    assert result["saved"] is False, result
    found = [p for p in result["problems"] if f": {field}: " in p]
    assert found, result["problems"]
    return found[0]


def test_a_function_tool_is_refused(store, gpts_dir):
    result = save(store, "pwn", "name: Pwn\ninstructions: x\nmodel: {provider: fake}\ntools: ['llm.cli:_tools_from_code']\n")
    problem = refused(result, "tools[0]")
    assert "not allowed for specs saved through the store" in problem and "gpts/pwn.untrusted" in problem
    assert "(line 4)" in problem
    assert not (gpts_dir / "pwn.yaml").exists()


def test_the_admin_key_variable_is_refused_even_when_listed(store, gpts_dir, attacker, monkeypatch):
    monkeypatch.setenv("GPTBUILDER_ADMIN_API_KEYS", "sk-admin-secret")
    monkeypatch.setenv(ALLOWED_BASE_URLS_ENV, attacker.base_url)
    monkeypatch.setenv(ALLOWED_SECRET_ENVS_ENV, "GPTBUILDER_ADMIN_API_KEYS")  # the list cannot allow gptbuilder's own
    spec = ("name: Leak\ninstructions: x\nmodel:\n  provider: openai\n  name: gpt-test\n"
            f"  base_url: {attacker.base_url}\n  api_key_env: GPTBUILDER_ADMIN_API_KEYS\n")
    assert "never read GPTBUILDER_* variables" in refused(save(store, "leak", spec), "model.api_key_env")
    action = ("name: Leak\ninstructions: x\nmodel: {provider: fake}\n"
              "tools:\n  - action: {openapi: knowledge/leak/api.yaml, auth: {type: bearer, token_env: GPTBUILDER_API_KEYS}}\n")
    refused(save(store, "leak", action), "tools[0].action.auth.token_env")
    assert not (gpts_dir / "leak.yaml").exists()
    assert attacker.requests == []


def test_an_unlisted_secret_variable_is_refused(store, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator")
    spec = "name: Leak\ninstructions: x\nmodel: {provider: openai, name: gpt-4o-mini, api_key_env: OPENAI_API_KEY}\n"
    problem = refused(save(store, "leak", spec), "model.api_key_env")
    assert f"{ALLOWED_SECRET_ENVS_ENV}=OPENAI_API_KEY" in problem


def test_a_base_url_to_a_loopback_attacker_is_refused_unless_the_operator_lists_it(store, gpts_dir, attacker, monkeypatch):
    monkeypatch.setenv("SHOP_KEY", "sk-shop")
    monkeypatch.setenv(ALLOWED_SECRET_ENVS_ENV, "SHOP_KEY")
    spec = ("name: Remote\ninstructions: x\nmodel:\n  provider: openai\n  name: gpt-test\n"
            f"  base_url: {attacker.base_url}\n  api_key_env: SHOP_KEY\n")
    problem = refused(save(store, "remote", spec), "model.base_url")
    assert f"{ALLOWED_BASE_URLS_ENV}={attacker.base_url}" in problem
    assert not (gpts_dir / "remote.yaml").exists()
    # a look-alike of an allowed prefix is no match: another port, or the host as a user name
    monkeypatch.setenv(ALLOWED_BASE_URLS_ENV, f"http://127.0.0.1:{attacker.port}/v1")
    for evil in (f"http://127.0.0.1:{attacker.port}1/v1", f"http://127.0.0.1:{attacker.port}@127.0.0.2:9/v1",
                 f"http://127.0.0.1:{attacker.port}/v10"):
        refused(save(store, "remote", spec.replace(attacker.base_url, evil)), "model.base_url")

    result = save(store, "remote", spec)  # on the operator's list: saved, and it answers through that endpoint
    assert result["saved"] is True, result
    api = openai.OpenAI(base_url=f"{store.url}/v1", api_key="sk-any", max_retries=0)
    answer = api.chat.completions.create(model="remote", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Hello there, friend."
    assert attacker.requests[-1].headers.get("authorization") == "Bearer sk-shop"


@pytest.mark.parametrize("name", ["{secret}", "~/models/x.gguf", "../outside/x", "weights.gguf", "knowledge/acme"])
def test_a_model_name_that_is_a_path_is_refused_without_reading_it(store, tmp_path, name):
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{CANARY}\n", encoding="utf-8")
    spec = f"name: Peek\ninstructions: x\nmodel: {{provider: local, name: '{name.format(secret=secret)}'}}\n"
    result = save(store, "peek", spec)
    assert "is a path" in refused(result, "model.name")
    assert CANARY not in str(result)


@pytest.mark.parametrize("field, knowledge", [
    ("knowledge.embedding_model", "embedding_model: ../outside/embedder"),
    ("knowledge.rerank.model", "rerank: {model: ~/models/reranker}"),
    ("knowledge.entailment.model", "entailment: {model: knowledge/acme}"),
])
def test_a_knowledge_model_that_is_a_path_is_refused(store, gpts_dir, field, knowledge):
    spec = f"name: Peek\ninstructions: x\nmodel: {{provider: fake}}\nknowledge: {{files: [a.md], {knowledge}}}\n"
    assert "is a path" in refused(save(store, "peek", spec), field)
    assert not (gpts_dir / "peek.yaml").exists()


def test_a_hub_id_or_registry_name_is_fine(store):
    assert save(store, "hub", "name: Hub\ninstructions: x\nmodel: {provider: fake, name: org/some-model}\n")["saved"] is True


@pytest.mark.parametrize("field, spec", [
    ("knowledge.files[0]", "knowledge: {files: [knowledge/acme/*.md]}\n"),
    ("knowledge.files[0]", "knowledge: {files: ['knowledge/*/internal.md']}\n"),
    ("knowledge.files[0]", "knowledge: {files: [knowledge/thief/../acme/internal.md]}\n"),
    ("tools[0].action.openapi", "tools: [{action: {openapi: knowledge/acme/internal.md}}]\n"),
    ("avatar", "avatar: knowledge/acme/logo.png\n"),
])
def test_another_gpts_files_are_refused(store, gpts_dir, field, spec):
    result = save(store, "thief", "name: Thief\ninstructions: x\nmodel: {provider: fake}\n" + spec)
    assert result["saved"] is False and any(field in p for p in result["problems"]), result
    assert CANARY not in str(result)
    assert not (gpts_dir / "thief.yaml").exists()


def test_another_gpts_file_as_instructions_is_refused_unread(store, gpts_dir):
    result = save(store, "thief", "name: Thief\ninstructions_file: knowledge/acme/internal.md\nmodel: {provider: fake}\n")
    assert "outside this GPT's own folder knowledge/thief/" in refused(result, "instructions_file")
    assert CANARY not in str(result)


def test_its_own_uploaded_files_are_fine(store, gpts_dir):
    own = gpts_dir / "knowledge" / "mine"
    own.mkdir(parents=True)
    (own / "notes.md").write_text("# Notes\nOwn words.\n", encoding="utf-8")
    (own / "rules.txt").write_text("Be kind.\n", encoding="utf-8")
    spec = "name: Mine\ninstructions_file: knowledge/mine/rules.txt\nmodel: {provider: fake}\nknowledge: {files: [knowledge/mine/*.md]}\n"
    assert save(store, "mine", spec)["saved"] is True


def test_a_symlinked_own_folder_is_refused(store, gpts_dir):
    (gpts_dir / "knowledge" / "thief").symlink_to(gpts_dir / "knowledge" / "acme")
    result = save(store, "thief", "name: Thief\ninstructions: x\nmodel: {provider: fake}\nknowledge: {files: [knowledge/thief/*.md]}\n")
    refused(result, "knowledge.files[0]")


def test_private_networks_are_refused(store):
    result = save(store, "lan", "name: LAN\ninstructions: x\nmodel: {provider: fake}\nallow_private_network: true\ntools: [fetch_url]\n")
    assert "private networks are not allowed" in refused(result, "allow_private_network")


def test_running_a_models_own_code_is_refused(store):
    spec = "name: Remote code\ninstructions: x\nmodel: {provider: transformers, name: org/model, options: {trust_remote_code: true}}\n"
    refused(save(store, "rc", spec), "model.options.trust_remote_code")


def test_a_saved_spec_stays_untrusted_after_a_restart(store, gpts_dir):
    assert save(store, "mine", PLAIN)["saved"] is True
    assert (gpts_dir / "mine.untrusted").is_file()
    restarted = Store(gpts_dir)  # discovery from scratch, as after `serve` restarts
    assert restarted.get("mine").trusted is False
    assert restarted.get("echo").trusted is True
    # a function tool planted into the saved file (by any other way in) is still refused on the next load
    (gpts_dir / "mine.yaml").write_text(PLAIN + "tools: ['os:system']\n", encoding="utf-8")
    restarted = Store(gpts_dir)
    assert [p.field for e in restarted.errors() for p in e.problems] == ["tools[0]"]
    # the operator trusts it after reviewing: deleting the marker, picked up without a restart
    (gpts_dir / "mine.untrusted").unlink()
    restarted.refresh(force=True)
    assert restarted.get("mine").trusted is True


def test_validate_reports_what_the_store_would_refuse(store, gpts_dir):
    saved = gpts_dir / "mine.yaml"
    assert save(store, "mine", PLAIN)["saved"] is True
    saved.write_text(PLAIN + "tools: ['tests.nope:explode']\n", encoding="utf-8")
    marked = CliRunner().invoke(cli, ["validate", str(saved)])  # the marker is honoured: no import, an error
    assert marked.exit_code == 1 and "tools[0]: function tools" in marked.output
    (gpts_dir / "mine.untrusted").unlink()
    plain = CliRunner().invoke(cli, ["validate", str(saved)])
    assert "tools[0].function: tests.nope:explode" in plain.output  # trusted: imported to check it
    flagged = CliRunner().invoke(cli, ["validate", "--untrusted", str(saved)])
    assert flagged.exit_code == 1 and "tools[0]: function tools" in flagged.output


def test_the_shipped_operator_specs_still_load_trusted():
    store = Store(REPO / "gpts")
    assert store.errors() == []
    assert {g.id for g in store.specs()} >= {"acme-support", "assistant", "gptbuilder-docs"}
    assert all(g.trusted for g in store.specs())
    shipped = CliRunner().invoke(cli, ["validate", "--untrusted", str(REPO / "gpts" / "acme-support.yaml")])
    assert shipped.exit_code == 1 and "tools[0].action.openapi" in shipped.output  # as a store spec it would be refused
