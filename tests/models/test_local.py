"""What the in-process providers share: one runtime cache, one provider check, one way to build a model."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gptbuilder.errors import ModelError
from gptbuilder.models import llama_cpp, transformers
from gptbuilder.models.base import DEFAULT_CONTEXT_WINDOW
from gptbuilder.models.local import LocalProvider, Runtime, RuntimeCache
from gptbuilder.spec import ModelConfig


class _Loaded(Runtime):
    """A runtime with something in it."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name


def test_the_cache_loads_once_per_key_even_when_asked_at_once():
    cache: RuntimeCache[_Loaded] = RuntimeCache()
    loads: list[str] = []
    barrier = threading.Barrier(8)
    results: list[_Loaded] = []

    def load() -> _Loaded:
        loads.append("a")
        time.sleep(0.05)  # a slow load: the others must wait for it, not start their own
        return _Loaded("a")

    def ask() -> None:
        barrier.wait()
        results.append(cache.get("a", load))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == ["a"] and len(results) == 8 and all(r is results[0] for r in results)
    assert "a" in cache and "b" not in cache
    other = cache.get("b", lambda: _Loaded("b"))
    assert other.name == "b" and other.lock is not results[0].lock  # each runtime serialises its own generation


def test_a_failed_load_is_not_cached_and_clear_forgets():
    cache: RuntimeCache[_Loaded] = RuntimeCache()

    def broken() -> _Loaded:
        raise ModelError("no weights")

    with pytest.raises(ModelError, match="no weights"):
        cache.get("k", broken)
    assert "k" not in cache
    first = cache.get("k", lambda: _Loaded("k"))
    assert cache.get("k", lambda: _Loaded("again")) is first
    cache.clear()
    assert "k" not in cache and cache.get("k", lambda: _Loaded("again")).name == "again"


def test_both_local_backends_use_the_shared_cache_and_provider():
    assert isinstance(llama_cpp._runtimes, RuntimeCache) and isinstance(transformers._runtimes, RuntimeCache)
    assert llama_cpp._runtimes is not transformers._runtimes
    for provider in (llama_cpp.provider, transformers.provider):
        assert isinstance(provider, LocalProvider)
        assert type(provider).check is LocalProvider.check and type(provider).create is LocalProvider.create


@pytest.mark.parametrize("provider", [llama_cpp.provider, transformers.provider], ids=lambda p: p.name)
def test_the_local_providers_check_alike(provider: LocalProvider, tmp_path: Path):
    problems = provider.check(
        ModelConfig(name="missing.gguf", options={"tool_routing": "magic", "gpu": 1}), base_dir=tmp_path
    )
    assert problems == [
        ("name", f"model file not found: {tmp_path / 'missing.gguf'}"),
        ("options", problems[1][1]),
        ("options.tool_routing", "'magic' is not one of embedding, model"),
    ]
    assert problems[1][1].startswith(f"unknown option(s) for provider {provider.name}: gpu (known: ")
    assert "tool_route_threshold" in problems[1][1]  # routing is every local model's option


@pytest.mark.parametrize("provider", [llama_cpp.provider, transformers.provider], ids=lambda p: p.name)
def test_a_missing_backend_library_is_a_provider_problem_with_the_install_line(provider, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in provider.requires else real(name, *a))
    problems = dict(provider.check(ModelConfig(), base_dir=tmp_path))
    assert problems["provider"].endswith(f"not installed: `{provider.install_hint}`")
    with pytest.raises(ModelError, match=r"model\.provider: .* not installed"):
        provider.create(ModelConfig(), base_dir=tmp_path)


@pytest.mark.parametrize("provider", [llama_cpp.provider, transformers.provider], ids=lambda p: p.name)
def test_the_local_providers_build_their_models_from_the_same_spec_fields(provider, tmp_path):
    config = ModelConfig(
        temperature=0.4, top_p=0.5, max_tokens=33, stop=["END"], seed=7,
        options={"tool_routing": "model", "tool_route_threshold": 0.6},
    )
    model: Any = provider.create(config, base_dir=tmp_path)
    assert (model.temperature, model.top_p, model.max_tokens, model.stop, model.seed) == (0.4, 0.5, 33, ["END"], 7)
    assert (model.tool_routing, model.tool_route_threshold) == ("model", 0.6)
    defaults: Any = provider.create(ModelConfig(options={"tool_routing": None}), base_dir=tmp_path)
    assert defaults.tool_routing == "embedding" and defaults.stop == [] and defaults.seed is None


def test_each_local_backend_keeps_its_own_fields(tmp_path):
    local: Any = llama_cpp.provider.create(
        ModelConfig(context_window=2048, options={"n_threads": 2, "top_k": 5}), base_dir=tmp_path
    )
    assert (local.n_ctx, local.n_threads, local.sampling) == (2048, 2, {"repeat_penalty": 1.1, "top_k": 5})
    assert llama_cpp.provider.create(ModelConfig(), base_dir=tmp_path).n_ctx == DEFAULT_CONTEXT_WINDOW
    gpu: Any = transformers.provider.create(
        ModelConfig(provider="transformers", options={"device": "cpu", "dtype": "float32"}), base_dir=tmp_path
    )
    assert (gpu.device, gpu.dtype, gpu.trust_remote_code, gpu.max_context) == ("cpu", "float32", False, None)


def test_a_requests_top_k_min_p_and_repeat_penalty_override_the_specs(tmp_path):
    local: Any = llama_cpp.provider.create(ModelConfig(options={"top_k": 5}), base_dir=tmp_path)
    params = local.decode_params(None, {"top_k": 40, "min_p": 0.05})
    assert (params["top_k"], params["min_p"], params["repeat_penalty"]) == (40, 0.05, 1.1)
    assert local.decode_params(None, {})["top_k"] == 5 and "min_p" not in local.decode_params(None, {})
    copied = local.model_copy(update={"repeat_penalty": 1.3})  # the tool loop's way of passing them
    assert copied.decode_params(None, {})["repeat_penalty"] == 1.3


def test_transformers_takes_them_in_generates_names(tmp_path):
    from types import SimpleNamespace

    gpu: Any = transformers.provider.create(ModelConfig(provider="transformers", temperature=0.7), base_dir=tmp_path)
    runtime: Any = SimpleNamespace(tokenizer=SimpleNamespace(pad_token_id=0), eos_ids={0})
    sampled = gpu._generate_kwargs(gpu.decode_params(None, {"top_k": 40, "min_p": 0.05, "repeat_penalty": 1.2}), runtime)
    assert (sampled["top_k"], sampled["min_p"], sampled["repetition_penalty"]) == (40, 0.05, 1.2)
    assert gpu._generate_kwargs(gpu.decode_params(None, {"top_k": -1}), runtime)["top_k"] is None  # -1: no cut
    greedy = gpu._generate_kwargs(gpu.decode_params(None, {"temperature": 0, "top_k": 40, "repeat_penalty": 1.2}), runtime)
    assert greedy["do_sample"] is False and greedy["top_k"] is None and greedy["repetition_penalty"] == 1.2
