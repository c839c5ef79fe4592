"""The model registry: atomic registration, listing, users, removal, and `registry:NAME` in specs."""

from __future__ import annotations

import json
import os
import time

import pytest

from gptbuilder.errors import InputError, ModelError
from gptbuilder.models.transformers import resolve_model
from gptbuilder.training.registry import ENTRY_FILE, Entry, Registry, check_name


def _register(registry: Registry, name: str, **kwargs) -> None:
    staging = registry.staging(name)
    (staging / "config.json").write_text("{}", encoding="utf-8")
    registry.commit(staging, Entry(name=name, base="embedded", method="lora"), **kwargs)


def test_a_model_appears_only_once_committed(tmp_path):
    registry = Registry(tmp_path)
    staging = registry.staging("shop")
    (staging / "config.json").write_text("{}", encoding="utf-8")
    assert registry.names() == [] and not registry.exists("shop")
    registry.commit(staging, Entry(name="shop", base="embedded", method="lora", command="gptbuilder train ..."))
    assert registry.names() == ["shop"] and not staging.exists()
    entry = json.loads((tmp_path / "models" / "shop" / ENTRY_FILE).read_text(encoding="utf-8"))
    assert entry["base"] == "embedded" and entry["size_bytes"] > 0 and entry["created"]
    assert registry.get("shop").command == "gptbuilder train ..."


def test_an_existing_name_is_refused_unless_overwrite(tmp_path):
    registry = Registry(tmp_path)
    _register(registry, "shop")
    with pytest.raises(InputError, match="already registered; pass --overwrite"):
        _register(registry, "shop")
    _register(registry, "shop", overwrite=True)
    assert registry.names() == ["shop"]
    assert [p.name for p in registry.root.iterdir()] == ["shop"]  # no staging or trash left behind


def test_unknown_names_get_did_you_mean(tmp_path):
    registry = Registry(tmp_path)
    _register(registry, "lantern-shop")
    with pytest.raises(ModelError, match=r"no registered model 'lantern-shp'; did you mean 'lantern-shop'\?"):
        registry.get("lantern-shp")


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 65, "a..b"])
def test_names_that_are_paths_are_refused(name):
    with pytest.raises(InputError, match="cannot name a model"):
        check_name(name)


def test_removal_is_refused_while_a_gpt_uses_the_model(tmp_path, write_spec, gpts_dir):
    registry = Registry(tmp_path)
    _register(registry, "shop")
    write_spec("helper", "name: Helper\ninstructions: x\nmodel: {provider: transformers, name: 'registry:shop'}\n")
    write_spec("other", "name: Other\ninstructions: x\nmodel: {provider: fake}\n")
    with pytest.raises(InputError, match=r"model 'shop' is used by helper"):
        registry.remove("shop", gpts_dir=gpts_dir)
    (gpts_dir / "helper.yaml").unlink()
    registry.remove("shop", gpts_dir=gpts_dir)
    assert registry.names() == [] and list(registry.root.iterdir()) == []


def test_abandoned_staging_folders_are_swept(tmp_path):
    registry = Registry(tmp_path)
    old = registry.staging("dead")
    fresh = registry.staging("alive")
    stale = time.time() - 2 * 24 * 3600
    os.utime(old, (stale, stale))
    registry.sweep()
    assert not old.exists() and fresh.exists()


def test_a_spec_names_a_registered_model_for_the_transformers_provider(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTBUILDER_DATA_DIR", str(tmp_path))
    registry = Registry(tmp_path)
    _register(registry, "shop")
    assert resolve_model("registry:shop", tmp_path) == str(tmp_path / "models" / "shop")
    with pytest.raises(ModelError, match="did you mean 'shop'"):
        resolve_model("registry:shoop", tmp_path)
