"""The provider registry: entry points, run-time registration, and the helpers every backend shares."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.messages.utils import count_tokens_approximately

from gptbuilder.agent import compile_agent
from gptbuilder.errors import ModelError, SpecError
from gptbuilder.loader import load_spec
from gptbuilder.models import registry
from gptbuilder.models.base import (
    DEFAULT_CONTEXT_WINDOW,
    DEFAULT_REMOTE_CONTEXT_WINDOW,
    ChatBackend,
    LocalChatBackend,
    context_window_of,
    count_tokens,
    is_chat_backend,
)
from gptbuilder.models.fake import FakeChatModel, FakeProvider
from gptbuilder.models.local import LocalChatModel
from gptbuilder.models.openai import ChatOpenAICompatible
from gptbuilder.models.options import option_problems
from gptbuilder.models.registry import (
    GROUP,
    Provider,
    create_model,
    get_provider,
    provider_names,
    register_provider,
    unregister_provider,
)
from gptbuilder.spec import ModelConfig

MESSAGES = [SystemMessage("Be brief."), HumanMessage("one two three four"), AIMessage("five six")]


class MineProvider(Provider):
    """A third-party backend, written the way a plugin package would write it."""

    name = "mine"

    def create(self, config: ModelConfig, *, base_dir: Path) -> FakeChatModel:
        """A fake model that says which provider built it."""
        self.ensure_valid(config, base_dir=base_dir)
        return FakeChatModel(replies=[f"mine answers with {config.name}"], context_window=config.context_window or 4096)

    def check(self, config: ModelConfig, *, base_dir: Path) -> list[tuple[str, str]]:
        """Only `flavour` is a known option."""
        return option_problems(config.options, {"flavour"}, self.name)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No entry point loaded by one test is cached for the next; nothing is written outside tmp_path."""
    monkeypatch.setattr(registry, "_loaded", {})
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("GPTBUILDER_GPTS_DIR", str(tmp_path / "gpts"))
    monkeypatch.setenv("GPTBUILDER_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def spec_file(tmp_path: Path) -> Callable[..., Path]:
    """Write `gpts/<file>.yaml` with the given `model:` fields."""

    def write(file: str = "plugged", **model: Any) -> Path:
        path = tmp_path / "gpts" / f"{file}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"name: Plugged\ninstructions: Be brief.\nmodel: {json.dumps(model)}\n", encoding="utf-8")
        return path

    return write


@pytest.fixture
def mine() -> Iterator[MineProvider]:
    provider = MineProvider()
    register_provider(provider)
    yield provider
    unregister_provider("mine")


@pytest.fixture
def extra_entry_points(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Add entry points to the installed ones, as if another package declared them."""
    real = registry._entry_points

    def add(**values: str) -> None:
        extra = {name: EntryPoint(name=name, value=value, group=GROUP) for name, value in values.items()}
        monkeypatch.setattr(registry, "_entry_points", lambda: {**real(), **extra})

    return add


# --- names ---------------------------------------------------------------------------------


def test_every_builtin_provider_is_installed_as_an_entry_point():
    assert {"local", "openai", "transformers", "fake"} <= set(provider_names())
    assert provider_names() == sorted(provider_names())
    assert {"local", "openai", "transformers", "fake"} <= set(registry._entry_points())


def test_builtin_providers_load_as_providers_with_their_names():
    for name in ("openai", "fake"):
        provider = get_provider(name)
        assert isinstance(provider, Provider)
        assert provider.name == name
        assert get_provider(name) is provider  # loaded once


def test_a_misspelt_provider_gets_a_suggestion():
    with pytest.raises(ModelError) as info:
        get_provider("lokal")
    assert "did you mean 'local'" in str(info.value)
    assert "'lokal'" in str(info.value)


def test_a_misspelt_provider_in_a_spec_is_a_spec_error_with_a_suggestion(spec_file):
    with pytest.raises(SpecError) as info:
        load_spec(spec_file(provider="lokal"))
    [problem] = info.value.problems
    assert problem.field == "model.provider"
    assert "did you mean 'local'" in problem.message


# --- run-time registration -----------------------------------------------------------------


def test_a_registered_provider_validates_and_compiles(mine, spec_file):
    assert "mine" in provider_names()
    loaded = load_spec(spec_file(provider="mine", name="m-1", context_window=2048, options={"flavour": "mint"}))

    agent = compile_agent(loaded)

    assert get_provider("mine") is mine
    assert isinstance(agent.model, FakeChatModel)
    assert agent.chat("Hi").text == "mine answers with m-1"
    assert agent.context_window == 2048


def test_a_registered_providers_own_checks_run_at_load(mine, spec_file):
    with pytest.raises(SpecError) as info:
        load_spec(spec_file(provider="mine", options={"colour": "red"}))
    [problem] = info.value.problems
    assert problem.field == "model.options"
    assert "colour" in problem.message and "flavour" in problem.message


def test_registered_names_are_suggested_for_typos(mine, spec_file):
    with pytest.raises(SpecError) as info:
        load_spec(spec_file(provider="mien"))
    assert "did you mean 'mine'" in str(info.value)


def test_unregistering_makes_the_spec_invalid_again(spec_file):
    path = spec_file(provider="mine")
    register_provider(MineProvider())
    try:
        load_spec(path)
    finally:
        unregister_provider("mine")

    assert "mine" not in provider_names()
    with pytest.raises(SpecError) as info:
        load_spec(path)
    [problem] = info.value.problems
    assert problem.field == "model.provider"
    assert "unknown provider 'mine'" in problem.message
    assert "fake" in problem.message  # the installed ones are listed as the fix
    with pytest.raises(ModelError, match="unknown model provider 'mine'"):
        get_provider("mine")

    register_provider(MineProvider(), name="mines")
    try:
        with pytest.raises(SpecError, match="did you mean 'mines'"):
            load_spec(path)
    finally:
        unregister_provider("mines")


def test_register_under_another_name_and_unregister_unknown_names_quietly():
    provider = MineProvider()
    register_provider(provider, name="mine-too")
    try:
        assert get_provider("mine-too") is provider
        assert "mine-too" in provider_names() and "mine" not in provider_names()
    finally:
        unregister_provider("mine-too")
    unregister_provider("never-registered")  # no error
    assert "mine-too" not in provider_names()


def test_a_registered_provider_shadows_an_installed_one_until_removed():
    stand_in = MineProvider()
    register_provider(stand_in, name="fake")
    try:
        assert get_provider("fake") is stand_in
    finally:
        unregister_provider("fake")
    assert isinstance(get_provider("fake"), FakeProvider)


def test_create_model_goes_through_the_registry(mine, tmp_path):
    model = create_model(ModelConfig(provider="mine", name="m-2"), base_dir=tmp_path)
    assert isinstance(model, FakeChatModel)
    assert model.replies == ["mine answers with m-2"]


def test_a_registered_providers_create_errors_are_model_errors(mine, tmp_path):
    with pytest.raises(ModelError, match=r"model\.options: unknown option\(s\) for provider mine: colour"):
        create_model(ModelConfig(provider="mine", options={"colour": "red"}), base_dir=tmp_path)


# --- entry points from other packages ------------------------------------------------------


def test_an_entry_point_naming_a_provider_class_is_instantiated(extra_entry_points):
    extra_entry_points(classy="gptbuilder.models.fake:FakeProvider")

    provider = get_provider("classy")

    assert isinstance(provider, FakeProvider)
    assert get_provider("classy") is provider
    assert "classy" in provider_names()


def test_an_entry_point_that_is_not_a_provider_is_a_model_error(extra_entry_points, spec_file):
    extra_entry_points(bad="json:dumps")

    assert "bad" in provider_names()
    with pytest.raises(ModelError) as info:
        get_provider("bad")
    assert "'bad'" in str(info.value) and "'json:dumps'" in str(info.value)
    assert "not a gptbuilder Provider" in str(info.value)
    with pytest.raises(ModelError, match="not a gptbuilder Provider"):
        create_model(ModelConfig(provider="bad"), base_dir=spec_file().parent)
    assert "bad" not in registry._loaded  # a broken plugin is not cached as if it worked


def test_an_entry_point_that_fails_to_import_is_a_model_error_naming_it(extra_entry_points):
    extra_entry_points(broken="gptbuilder_plugin_that_is_not_installed:provider")

    with pytest.raises(ModelError) as info:
        get_provider("broken")
    assert "'broken'" in str(info.value)
    assert "gptbuilder_plugin_that_is_not_installed" in str(info.value)


@pytest.mark.parametrize(
    ("module", "value"),
    [
        (None, "json:no_such_provider"),  # a typo in the entry point's attribute
        ("exploding_plugin", "exploding_plugin:provider"),  # a plugin that raises while importing
    ],
)
def test_any_failure_loading_an_entry_point_is_a_model_error_naming_it(
    extra_entry_points, tmp_path, monkeypatch, module, value
):
    if module:
        (tmp_path / f"{module}.py").write_text('raise RuntimeError("this plugin needs a GPU")\n', encoding="utf-8")
        monkeypatch.syspath_prepend(str(tmp_path))
    extra_entry_points(flaky=value)

    with pytest.raises(ModelError) as info:
        get_provider("flaky")
    assert "'flaky'" in str(info.value)


# --- the backend contract ------------------------------------------------------------------


class _Counted:
    """A chat model outside gptbuilder that implements ChatBackend by hand."""

    def __init__(self, window: int = 4096):
        self.seen: list[Any] = []
        self.window = window

    @property
    def context_window(self) -> int:
        return self.window

    def count_message_tokens(self, messages):
        self.seen.append(list(messages))
        return 99


def test_every_builtin_backend_implements_the_contract(tmp_path):
    remote = create_model(ModelConfig(provider="openai", name="gpt-test", base_url="http://127.0.0.1:9/v1"), base_dir=tmp_path)
    local = create_model(ModelConfig(), base_dir=tmp_path)
    transformers = create_model(ModelConfig(provider="transformers"), base_dir=tmp_path)
    for model in (remote, local, transformers, create_model(ModelConfig(provider="fake"), base_dir=tmp_path)):
        assert is_chat_backend(model), type(model)
    # asking loads nothing, though a local model's context_window is a property that loads the weights
    # (Python 3.11's isinstance(model, ChatBackend) would read it: is_chat_backend is the safe test)
    assert local._runtime is None and transformers._runtime is None
    for model in (local, transformers):
        assert isinstance(model, LocalChatModel) and type(model)._decode is not LocalChatModel._decode
    assert isinstance(remote, ChatBackend) and not isinstance(remote, LocalChatBackend)


def test_one_default_context_window_for_in_process_models_a_larger_one_for_remote(tmp_path):
    assert DEFAULT_CONTEXT_WINDOW == 4096  # what the embedded model has always run with
    assert create_model(ModelConfig(), base_dir=tmp_path).n_ctx == DEFAULT_CONTEXT_WINDOW
    assert create_model(ModelConfig(provider="fake"), base_dir=tmp_path).context_window == DEFAULT_CONTEXT_WINDOW
    remote = create_model(ModelConfig(provider="openai", name="gpt-test", base_url="http://127.0.0.1:9/v1"), base_dir=tmp_path)
    assert remote.context_window == DEFAULT_REMOTE_CONTEXT_WINDOW > DEFAULT_CONTEXT_WINDOW


def test_a_provider_whose_model_breaks_the_contract_is_refused_by_name(tmp_path):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    class Plain(Provider):
        name = "plain"

        def create(self, config, *, base_dir):
            return FakeListChatModel(responses=["hi"])

    register_provider(Plain())
    try:
        with pytest.raises(ModelError, match=r"provider 'plain' built a FakeListChatModel.*ChatBackend"):
            create_model(ModelConfig(provider="plain"), base_dir=tmp_path)
    finally:
        unregister_provider("plain")


def test_count_tokens_uses_the_backends_own_count():
    assert count_tokens(FakeChatModel(), MESSAGES) == FakeChatModel().count_message_tokens(MESSAGES) == (2 + 4 + 2) + 3 * 3
    counted = _Counted()
    assert count_tokens(counted, MESSAGES) == 99
    assert counted.seen == [MESSAGES]


def test_a_model_outside_the_contract_gets_the_estimate_and_the_default_window():
    expected = count_tokens_approximately(MESSAGES)
    assert expected > 0

    class HalfDone:  # a token counter alone is not the contract: no guessing from parts of it
        def count_message_tokens(self, messages):
            raise AssertionError("not a ChatBackend; must not be asked")

    for model in (object(), HalfDone()):
        assert not is_chat_backend(model)
        assert count_tokens(model, MESSAGES) == expected
        assert context_window_of(model, ModelConfig()) == DEFAULT_CONTEXT_WINDOW


def test_remote_models_estimate_without_a_tokenizer(tmp_path):
    # remote models have no local tokenizer; counting must not reach for one (tiktoken downloads)
    remote = create_model(ModelConfig(provider="openai", name="gpt-test", base_url="http://127.0.0.1:9/v1"), base_dir=tmp_path)
    assert isinstance(remote, ChatOpenAICompatible)
    assert count_tokens(remote, MESSAGES) == remote.count_message_tokens(MESSAGES) == count_tokens_approximately(MESSAGES)


def test_context_window_prefers_the_spec_then_the_model_then_a_default():
    assert context_window_of(_Counted(4096), ModelConfig(context_window=2048)) == 2048
    assert context_window_of(_Counted(4096), ModelConfig()) == 4096
    assert context_window_of(object(), ModelConfig()) == DEFAULT_CONTEXT_WINDOW
    assert context_window_of(object(), ModelConfig(context_window=100_000)) == 100_000



# --- one problem style --------------------------------------------------------------------


def test_every_builtin_provider_reports_problems_the_same_way(tmp_path):
    """(field, message) pairs with the field under `model.`: a bad value names its option."""
    bad = {
        "local": {"repeat_penalty": "high"},
        "transformers": {"dtype": "fp8"},
        "openai": {"headers": ["X-Team"]},
        "fake": {"replies": 3},
    }
    for name, options in bad.items():
        config = ModelConfig(provider=name, name="m", base_url="http://127.0.0.1:9/v1", options=options)
        problems = get_provider(name).check(config, base_dir=tmp_path)
        [option] = [field for field, _ in problems if field.startswith("options")]
        assert option == f"options.{next(iter(options))}", (name, problems)
        unknown = get_provider(name).check(ModelConfig(provider=name, name="m", options={"zzz": 1}), base_dir=tmp_path)
        assert ("options", next(m for f, m in unknown if f == "options")) in unknown
        assert "unknown option(s) for provider " + name + ": zzz (known: " in dict(unknown)["options"]


def test_ensure_valid_names_every_problem_at_once(tmp_path):
    config = ModelConfig(provider="transformers", options={"dtype": "fp8", "device": "gpu"})
    with pytest.raises(ModelError) as info:
        get_provider("transformers").create(config, base_dir=tmp_path)
    assert "model.options.device: 'gpu' is not a device" in str(info.value)
    assert "; model.options.dtype: 'fp8' is not one of" in str(info.value)
