"""store: every spec in a folder, broken ones kept aside, agents cached until their files change."""

from __future__ import annotations

import os
import threading
import time
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

import gptbuilder.models.registry as registry
from gptbuilder.agent import Agent
from gptbuilder.errors import SpecError, UnknownGPTError
from gptbuilder.loader import LoadedSpec
from gptbuilder.spec import ModelConfig
from gptbuilder.store import Store


def spec_text(name: str, instructions: str = "Be helpful.") -> str:
    return f"name: {name}\ninstructions: {instructions}\n"


class Folder:
    """A GPTs folder whose writes always move the mtime forward, so every edit is visible.

    It also keeps the monotonic clock its stores see, and each change moves it past the store's
    refresh interval: the next access sees the change, as it would a second later in real life.
    """

    def __init__(self, path: Path):
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)
        self._clock = time.time_ns() - 1_000_000_000_000  # well in the past, then strictly increasing
        self.seconds = 0.0

    def now(self) -> float:
        """The stores' monotonic clock."""
        return self.seconds

    def tick(self) -> None:
        """Let more than the refresh interval pass."""
        self.seconds += 5.0

    def write(self, name: str, text: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self._clock += 5_000_000_000
        os.utime(path, ns=(self._clock, self._clock))
        self.tick()
        return path

    def remove(self, name: str) -> None:
        (self.path / name).unlink()
        self.tick()


class FakeModels:
    """A model factory that records its calls and hands out langchain-core fake chat models."""

    def __init__(self, reply: str = "ok", delay: float = 0.0):
        self.calls: list[tuple[ModelConfig, Path]] = []
        self.reply = reply
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, config: ModelConfig, *, base_dir: Path) -> FakeListChatModel:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.calls.append((config, base_dir))
        return FakeListChatModel(responses=[self.reply])


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return Folder(tmp_path / "specs")


@pytest.fixture
def models() -> FakeModels:
    return FakeModels()


@pytest.fixture
def store(folder: Folder, models: FakeModels) -> Store:
    return Store(folder.path, model_factory=models, clock=folder.now)


# --- discovery ---------------------------------------------------------------------------------


def test_every_yaml_directly_in_the_folder_is_a_gpt(folder: Folder, store: Store):
    folder.write("beta.yaml", spec_text("Beta"))
    folder.write("alpha.yaml", spec_text("Alpha"))
    folder.write("notes.md", "not a spec")
    folder.write("readme.txt", "name: Nope\ninstructions: hi\n")
    folder.write("nested/gamma.yaml", spec_text("Gamma"))
    folder.write(".hidden.yaml", spec_text("Hidden"))
    (folder.path / "dir.yaml").mkdir()
    specs = store.specs()
    assert [s.id for s in specs] == ["alpha", "beta"]
    assert all(isinstance(s, LoadedSpec) for s in specs)
    assert [s.spec.name for s in specs] == ["Alpha", "Beta"]
    assert store.errors() == []


def test_missing_or_empty_folder(tmp_path: Path):
    assert Store(tmp_path / "nowhere").specs() == []
    assert Store(tmp_path / "nowhere").errors() == []
    (tmp_path / "empty").mkdir()
    assert Store(tmp_path / "empty").specs() == []


def test_folder_created_later_is_picked_up(tmp_path: Path):
    store = Store(tmp_path / "later")
    assert store.specs() == []
    Folder(tmp_path / "later").write("acme.yaml", spec_text("Acme"))
    store.refresh(force=True)
    assert [s.id for s in store.specs()] == ["acme"]


def test_get_returns_the_loaded_spec(folder: Folder, store: Store):
    path = folder.write("acme.yaml", spec_text("Acme", "Answer briefly."))
    loaded = store.get("acme")
    assert loaded.id == "acme"
    assert loaded.path == path
    assert loaded.instructions == "Answer briefly."


def test_a_yml_file_does_not_silently_shadow_the_yaml_one(folder: Folder, store: Store):
    # Specs are `*.yaml`; a stray `acme.yml` next to `acme.yaml` must not replace it unannounced.
    folder.write("acme.yaml", spec_text("From yaml"))
    folder.write("acme.yml", spec_text("From yml"))
    try:
        loaded = store.get("acme")
    except SpecError as exc:  # reporting the clash is fine too, if it names both files
        assert "acme.yaml" in str(exc) and "acme.yml" in str(exc)
    else:
        assert loaded.spec.name == "From yaml"
        assert loaded.path.name == "acme.yaml"


# --- broken specs ------------------------------------------------------------------------------


def test_broken_spec_is_listed_in_errors_and_skipped(folder: Folder, store: Store):
    folder.write("good.yaml", spec_text("Good"))
    broken = folder.write("broken.yaml", "name: Broken\ninstructions: hi\ncategori: qa\n")
    folder.write("also-bad.yaml", "- not\n- a mapping\n")
    assert [s.id for s in store.specs()] == ["good"]
    errors = store.errors()
    assert len(errors) == 2
    assert all(isinstance(e, SpecError) for e in errors)
    assert [e.problems[0].file for e in errors] == [str(folder.path / "also-bad.yaml"), str(broken)]
    assert str(errors[1]) == f"{broken}: categori: unknown field 'categori'; did you mean 'category'? (line 3)"


def test_hostile_specs_do_not_take_the_others_down(folder: Folder, store: Store):
    folder.write("good.yaml", spec_text("Good"))
    folder.write("pyobj.yaml", "name: !!python/object/apply:os.system ['true']\ninstructions: hi\n")
    folder.write(
        "bomb.yaml",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")),
    )
    (folder.path / "huge.yaml").write_bytes(b"name: Huge\ninstructions: hi\n#" + b"x" * 5_000_000)
    (folder.path / "latin.yaml").write_bytes(b"name: caf\xe9\ninstructions: hi\n")
    folder.write("empty.yaml", "")
    folder.write("Bad_Name.yaml", spec_text("Bad name"))
    assert [s.id for s in store.specs()] == ["good"]
    assert len(store.errors()) == 6
    assert store.get("good").spec.name == "Good"


def test_get_of_a_broken_spec_raises_its_spec_error(folder: Folder, store: Store):
    folder.write("broken.yaml", "name: Broken\ninstructions: hi\ncategory: codng\n")
    with pytest.raises(SpecError) as exc:
        store.get("broken")
    assert len(exc.value.problems) == 1
    problem = exc.value.problems[0]
    assert problem.field == "category"
    assert problem.message.endswith("did you mean 'coding'?")
    assert [str(p) for p in store.errors()[0].problems] == [str(problem)]


def test_agent_of_a_broken_spec_raises_and_builds_no_model(folder: Folder, store: Store, models: FakeModels):
    folder.write("broken.yaml", "name: Broken\n")
    with pytest.raises(SpecError, match="give the GPT 'instructions'"):
        store.agent("broken")
    assert models.calls == []


def test_broken_spec_with_a_bad_file_name_suggests_a_name(folder: Folder, store: Store):
    folder.write("Acme_Support.yaml", spec_text("Acme"))
    with pytest.raises(SpecError, match=r"rename the file to acme-support\.yaml"):
        store.get("Acme_Support")


def test_a_provider_plugin_that_fails_to_import_breaks_only_its_own_spec(folder: Folder, store: Store, monkeypatch):
    real = registry._entry_points
    monkeypatch.setattr(
        registry,
        "_entry_points",
        lambda: {**real(), "broken": EntryPoint("broken", "gptbuilder_no_such_module_xyz:provider", registry.GROUP)},
    )
    folder.write("good.yaml", spec_text("Good"))
    folder.write("plugin.yaml", spec_text("Plugin") + "model:\n  provider: broken\n")
    assert [s.id for s in store.specs()] == ["good"]
    errors = store.errors()
    assert len(errors) == 1
    assert errors[0].problems[0].field == "model.provider"
    with pytest.raises(SpecError, match="gptbuilder_no_such_module_xyz"):
        store.get("plugin")


def test_a_provider_whose_check_crashes_breaks_only_its_own_spec(folder: Folder, store: Store):
    class Crashing(registry.Provider):
        name = "crashing"

        def check(self, config, *, base_dir):
            raise RuntimeError("plugin bug")

    registry.register_provider(Crashing())
    try:
        folder.write("good.yaml", spec_text("Good"))
        folder.write("plugin.yaml", spec_text("Plugin") + "model:\n  provider: crashing\n")
        assert [s.id for s in store.specs()] == ["good"]
        assert len(store.errors()) == 1
        with pytest.raises(SpecError, match="plugin bug"):
            store.get("plugin")
    finally:
        registry.unregister_provider("crashing")


# --- unknown ids -------------------------------------------------------------------------------


def test_unknown_id_with_did_you_mean(folder: Folder, store: Store):
    folder.write("acme-support.yaml", spec_text("Acme"))
    with pytest.raises(UnknownGPTError) as exc:
        store.get("acme-suport")
    assert exc.value.gpt_id == "acme-suport"
    assert str(exc.value) == "unknown GPT 'acme-suport'; did you mean 'acme-support'?"


def test_unknown_id_without_a_close_match(folder: Folder, store: Store):
    folder.write("acme.yaml", spec_text("Acme"))
    with pytest.raises(UnknownGPTError) as exc:
        store.agent("zzzzzzzz")
    assert str(exc.value) == "unknown GPT 'zzzzzzzz'"


def test_ids_are_file_stems_only(folder: Folder, store: Store):
    folder.write("acme.yaml", spec_text("Acme"))
    for wrong in ("acme.yaml", "Acme", "../specs/acme", ""):
        with pytest.raises(UnknownGPTError):
            store.get(wrong)


# --- changes on disk ---------------------------------------------------------------------------


def test_editing_a_spec_is_picked_up_on_next_access(folder: Folder, store: Store):
    folder.write("acme.yaml", spec_text("Acme", "First."))
    assert store.get("acme").instructions == "First."
    folder.write("acme.yaml", spec_text("Acme v2", "Second."))
    loaded = store.get("acme")
    assert loaded.spec.name == "Acme v2"
    assert loaded.instructions == "Second."


def test_editing_the_instructions_file_is_picked_up(folder: Folder, store: Store):
    folder.write("prompts/acme.md", "First.")
    folder.write("acme.yaml", "name: Acme\ninstructions_file: prompts/acme.md\n")
    assert store.get("acme").instructions == "First."
    folder.write("prompts/acme.md", "Second, and longer.")
    assert store.get("acme").instructions == "Second, and longer."


def test_a_good_spec_turning_bad_and_back(folder: Folder, store: Store):
    folder.write("other.yaml", spec_text("Other"))
    folder.write("acme.yaml", spec_text("Acme"))
    assert store.get("acme").spec.name == "Acme"
    folder.write("acme.yaml", "name: Acme\ninstructions: hi\ntemperature: 2\n")
    with pytest.raises(SpecError, match="unknown field 'temperature'"):
        store.get("acme")
    assert [s.id for s in store.specs()] == ["other"]
    assert len(store.errors()) == 1
    folder.write("acme.yaml", spec_text("Acme fixed"))
    assert store.get("acme").spec.name == "Acme fixed"
    assert store.errors() == []


def test_creating_a_missing_instructions_file_fixes_the_spec(folder: Folder, store: Store):
    # The spec itself did not change, but the file it names now exists.
    folder.write("acme.yaml", "name: Acme\ninstructions_file: prompts/acme.md\n")
    with pytest.raises(SpecError, match=r"file not found: prompts/acme\.md"):
        store.get("acme")
    folder.write("prompts/acme.md", "Now I exist.")
    assert store.get("acme").instructions == "Now I exist."
    assert store.errors() == []


def test_adding_a_file_adds_a_gpt(folder: Folder, store: Store):
    folder.write("acme.yaml", spec_text("Acme"))
    assert [s.id for s in store.specs()] == ["acme"]
    folder.write("beta.yaml", spec_text("Beta"))
    assert [s.id for s in store.specs()] == ["acme", "beta"]


def test_deleting_a_file_removes_the_gpt(folder: Folder, store: Store):
    folder.write("acme.yaml", spec_text("Acme"))
    folder.write("beta.yaml", spec_text("Beta"))
    store.agent("acme")
    folder.remove("acme.yaml")
    assert [s.id for s in store.specs()] == ["beta"]
    with pytest.raises(UnknownGPTError):
        store.get("acme")
    with pytest.raises(UnknownGPTError):
        store.agent("acme")


def test_deleting_a_broken_file_clears_its_error(folder: Folder, store: Store):
    folder.write("broken.yaml", "name: Broken\n")
    assert len(store.errors()) == 1
    folder.remove("broken.yaml")
    assert store.errors() == []
    with pytest.raises(UnknownGPTError):
        store.get("broken")


def test_renaming_a_file_changes_the_id(folder: Folder, store: Store):
    folder.write("acme.yaml", spec_text("Acme"))
    assert store.get("acme").id == "acme"
    (folder.path / "acme.yaml").rename(folder.path / "acme-shoes.yaml")
    folder.tick()
    assert [s.id for s in store.specs()] == ["acme-shoes"]
    with pytest.raises(UnknownGPTError, match="unknown GPT 'acme'"):
        store.get("acme")


# --- compiled agents ---------------------------------------------------------------------------


def test_agent_is_compiled_with_the_injected_model(folder: Folder, store: Store, models: FakeModels):
    folder.write("acme.yaml", spec_text("Acme", "Say ok.") + "model:\n  temperature: 0.3\n")
    agent = store.agent("acme")
    assert isinstance(agent, Agent)
    assert agent.id == "acme"
    assert agent.system_prompt() == "Say ok."
    assert isinstance(agent.model, FakeListChatModel)
    assert len(models.calls) == 1
    config, base_dir = models.calls[0]
    assert config.temperature == 0.3
    assert base_dir == folder.path
    assert agent.chat("hello").text == "ok"


def test_agent_is_cached_while_files_are_unchanged(folder: Folder, store: Store, models: FakeModels):
    folder.write("acme.yaml", spec_text("Acme"))
    folder.write("beta.yaml", spec_text("Beta"))
    first = store.agent("acme")
    assert store.agent("acme") is first
    store.specs()
    store.errors()
    store.get("acme")
    folder.write("beta.yaml", spec_text("Beta v2"))  # another GPT changing does not matter
    folder.write("notes.md", "unrelated")  # nor does an unrelated file
    assert store.agent("acme") is first
    assert len(models.calls) == 1


def test_agent_is_rebuilt_when_the_spec_changes(folder: Folder, store: Store, models: FakeModels):
    folder.write("acme.yaml", spec_text("Acme", "First."))
    first = store.agent("acme")
    folder.write("acme.yaml", spec_text("Acme", "Second."))
    second = store.agent("acme")
    assert second is not first
    assert second.system_prompt() == "Second."
    assert len(models.calls) == 2
    assert store.agent("acme") is second
    assert len(models.calls) == 2


def test_agent_is_rebuilt_when_its_instructions_file_changes(folder: Folder, store: Store, models: FakeModels):
    folder.write("prompts/acme.md", "First.")
    folder.write("acme.yaml", "name: Acme\ninstructions_file: prompts/acme.md\n")
    first = store.agent("acme")
    assert first.system_prompt() == "First."
    folder.write("prompts/acme.md", "Second.")
    second = store.agent("acme")
    assert second is not first
    assert second.system_prompt() == "Second."
    assert len(models.calls) == 2


def test_touching_a_file_without_changes_rebuilds_at_most_once(folder: Folder, store: Store, models: FakeModels):
    path = folder.write("acme.yaml", spec_text("Acme"))
    first = store.agent("acme")
    future = path.stat().st_mtime_ns + 10_000_000_000
    os.utime(path, ns=(future, future))
    folder.tick()
    second = store.agent("acme")
    assert store.agent("acme") is second
    assert second.system_prompt() == first.system_prompt()
    assert len(models.calls) <= 2


def test_agents_of_different_gpts_are_separate(folder: Folder, store: Store, models: FakeModels):
    folder.write("acme.yaml", spec_text("Acme", "I am Acme."))
    folder.write("beta.yaml", spec_text("Beta", "I am Beta."))
    assert store.agent("acme").system_prompt() == "I am Acme."
    assert store.agent("beta").system_prompt() == "I am Beta."
    assert len(models.calls) == 2


def test_concurrent_agent_requests_build_one_agent(folder: Folder):
    folder.write("acme.yaml", spec_text("Acme"))
    models = FakeModels(delay=0.05)
    store = Store(folder.path, model_factory=models)
    results: list[Agent] = []
    failures: list[BaseException] = []

    def ask() -> None:
        try:
            results.append(store.agent("acme"))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(results) == 8
    assert all(agent is results[0] for agent in results)
    assert len(models.calls) == 1


def test_store_without_a_factory_loads_no_model_until_asked(folder: Folder, monkeypatch):
    # Listing and getting specs never builds a model; only `agent()` does.
    import gptbuilder.models.registry as reg

    def forbidden(*args, **kwargs):
        raise AssertionError("no model may be created while listing specs")

    monkeypatch.setattr(reg, "create_model", forbidden)
    folder.write("acme.yaml", spec_text("Acme"))
    store = Store(folder.path)
    assert [s.id for s in store.specs()] == ["acme"]
    assert store.get("acme").spec.name == "Acme"
    assert store.errors() == []


# --- per request: no folder scan, no store-wide compile lock ------------------------------------


class StatCounter:
    """Counts file-system metadata calls (stat and directory listings) made through pathlib and os."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.count = 0
        real_stat, real_scandir = Path.stat, os.scandir

        def stat(path: Path, *args, **kwargs):
            self.count += 1
            return real_stat(path, *args, **kwargs)

        def scandir(*args, **kwargs):
            self.count += 1
            return real_scandir(*args, **kwargs)

        monkeypatch.setattr(Path, "stat", stat)
        monkeypatch.setattr(os, "scandir", scandir)


def test_many_requests_within_a_second_touch_the_file_system_once(folder: Folder, store: Store, monkeypatch):
    for name in ("acme", "beta", "gamma"):
        folder.write(f"prompts/{name}.md", f"I am {name}.")
        folder.write(f"{name}.yaml", f"name: {name}\ninstructions_file: prompts/{name}.md\n")
    store.agent("acme")
    stats = StatCounter(monkeypatch)
    for _ in range(200):
        assert store.get("beta").instructions == "I am beta."
        store.agent("acme")
        store.specs()
        store.errors()
    assert stats.count == 0  # each of these 800 calls used to list the folder and stat all six files
    folder.seconds += 1.0
    store.get("beta")
    store.specs()
    assert 6 <= stats.count <= 12  # one check: the listing and a stat of each spec and instructions file


def test_a_change_is_seen_once_the_second_has_passed(folder: Folder, store: Store):
    folder.write("acme.yaml", spec_text("Acme", "First."))
    assert store.get("acme").instructions == "First."
    (folder.path / "acme.yaml").write_text(spec_text("Acme", "Second."), encoding="utf-8")
    (folder.path / "beta.yaml").write_text(spec_text("Beta"), encoding="utf-8")
    assert store.get("acme").instructions == "First."  # within the second: not checked again
    assert [s.id for s in store.specs()] == ["acme"]
    folder.seconds += 1.0
    assert store.get("acme").instructions == "Second."
    assert [s.id for s in store.specs()] == ["acme", "beta"]


def test_refresh_force_checks_at_once(folder: Folder, store: Store):
    folder.write("acme.yaml", spec_text("Acme", "First."))
    assert store.get("acme").instructions == "First."
    (folder.path / "acme.yaml").write_text(spec_text("Acme", "Second, and longer."), encoding="utf-8")
    store.refresh(force=True)
    assert store.get("acme").instructions == "Second, and longer."


def test_a_spec_saved_through_the_store_is_listed_at_once(folder: Folder, store: Store):
    folder.write("acme.yaml", spec_text("Acme"))
    assert [s.id for s in store.specs()] == ["acme"]
    result = store.save("poet", "name: Poet\ninstructions: Write short poems.\n")
    assert result.path == folder.path / "poet.yaml"
    assert [s.id for s in store.specs()] == ["acme", "poet"]
    store.save("poet", "name: Poet v2\ninstructions: Write haiku.\n", loaded_fingerprint=result.fingerprint)
    assert store.get("poet").spec.name == "Poet v2"
    with pytest.raises(SpecError):
        store.save("poet", "name: Broken\n")
    assert store.get("poet").spec.name == "Poet v2"


class GatedModels(FakeModels):
    """A model factory that blocks while building a model with temperature 0.7, until released."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, config: ModelConfig, *, base_dir: Path) -> FakeListChatModel:
        if config.temperature == 0.7:
            self.entered.set()
            assert self.release.wait(10), "the test never released the slow compile"
        return super().__call__(config, base_dir=base_dir)


def _in_thread(fn, *args) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    thread.start()
    return thread, out


def test_compiling_one_gpt_does_not_block_another(folder: Folder):
    folder.write("slow.yaml", spec_text("Slow") + "model: {temperature: 0.7}\n")
    folder.write("fast.yaml", spec_text("Fast"))
    models = GatedModels()
    store = Store(folder.path, model_factory=models)
    slow, slow_out = _in_thread(store.agent, "slow")
    try:
        assert models.entered.wait(5)
        fast, fast_out = _in_thread(store.agent, "fast")
        fast.join(5)
        assert not fast.is_alive(), "compiling 'slow' held up the agent of 'fast'"
        assert fast_out[0].id == "fast"
        listing, listed = _in_thread(store.specs)
        listing.join(5)
        assert [s.id for s in listed[0]] == ["fast", "slow"]  # listing and getting are not held up either
        again, again_out = _in_thread(store.agent, "slow")  # a second request for the GPT waits for that compile
        again.join(0.2)
        assert again.is_alive() and slow.is_alive()
    finally:
        models.release.set()
    slow.join(5)
    again.join(5)
    assert slow_out[0] is again_out[0]
    assert [config.temperature for config, _ in models.calls].count(0.7) == 1
