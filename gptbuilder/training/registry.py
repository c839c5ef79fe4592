"""The model registry: trained models under `<data>/models/<name>/`, each with an `entry.json` describing it.

A model folder holds a transformers checkpoint (the merged weights and the tokenizer) that the transformers
provider loads as it is, the LoRA adapter alone under `adapter/`, and `entry.json`. A model is built in a
hidden staging folder next to the registry and renamed into place only when complete, so a run that dies
leaves no half-registered model: `list` ignores hidden folders and `sweep` removes abandoned ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError, ModelError, did_you_mean
from ..settings import Settings

PREFIX = "registry:"
ENTRY_FILE = "entry.json"
ADAPTER_DIR = "adapter"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_STAGING = ".staging-"
_TRASH = ".trash-"
STALE_STAGING_SECONDS = 24 * 3600  # a staging folder this old belongs to a run that died


def check_name(name: str) -> str:
    """Return ``name`` if it can name a registered model (a folder name, no path); InputError otherwise."""
    if not _NAME.match(name) or name.endswith(".") or ".." in name:
        raise InputError(
            f"{name!r} cannot name a model: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


@dataclass
class Entry:
    """What `entry.json` records about one registered model."""

    name: str
    base: str  # what BASE the user gave (embedded, registry:NAME, a folder, a hub id)
    method: str  # lora | full
    sources: list[dict[str, Any]] = field(default_factory=list)  # {"path", "sha256", "kind"}
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # before/after validation loss and perplexity, steps, seconds
    size_bytes: int = 0
    created: str = ""
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to entry.json and printed by `models show --json`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        """Read an entry.json object, ignoring keys a later version may add."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def folder_size(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Registry:
    """The registered models of one data folder."""

    def __init__(self, data_dir: Path):
        self.root = Path(data_dir) / "models"

    @classmethod
    def from_env(cls) -> Registry:
        """The registry of GPTBUILDER_DATA_DIR (default ./store/data), for callers without settings."""
        return cls(Settings.from_env().data_dir)

    def names(self) -> list[str]:
        """Registered model names, sorted; staging and trash folders are not models."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and (p / ENTRY_FILE).is_file())

    def entries(self) -> list[Entry]:
        """Every registered model's entry."""
        return [self.get(name) for name in self.names()]

    def exists(self, name: str) -> bool:
        """Whether a model of this name is registered."""
        return bool(_NAME.match(name)) and (self.root / name / ENTRY_FILE).is_file()

    def path(self, name: str) -> Path:
        """The model's folder (a transformers checkpoint); ModelError with did-you-mean when there is none."""
        if not self.exists(name):
            known = self.names()
            listed = f" (registered: {', '.join(known)})" if known else " (none is registered; train one with `gptbuilder train finetune`)"
            raise ModelError(f"no registered model {name!r}{did_you_mean(name, known)}{listed}")
        return self.root / name

    def get(self, name: str) -> Entry:
        """One model's entry."""
        path = self.path(name) / ENTRY_FILE
        try:
            return Entry.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"the registry entry {path} is unreadable: {exc}") from exc

    def staging(self, name: str) -> Path:
        """A fresh hidden folder to build model ``name`` in; `commit` moves it into place."""
        check_name(name)
        self.root.mkdir(parents=True, exist_ok=True)
        self.sweep()
        folder = self.root / f"{_STAGING}{name}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        return folder

    def commit(self, staging: Path, entry: Entry, *, overwrite: bool = False) -> Path:
        """Write ``entry`` into ``staging`` and rename it to the model's folder: all of it appears at once.

        Whatever happens, ``staging`` is gone afterwards: renamed into place, or deleted.
        """
        try:
            return self._commit(staging, entry, overwrite=overwrite)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _commit(self, staging: Path, entry: Entry, *, overwrite: bool) -> Path:
        check_name(entry.name)
        target = self.root / entry.name
        entry.size_bytes = folder_size(staging)
        entry.created = entry.created or time.strftime("%Y-%m-%dT%H:%M:%S%z")
        temp = staging / f".{ENTRY_FILE}.tmp"
        temp.write_text(json.dumps(entry.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(temp, staging / ENTRY_FILE)
        trash = None
        if target.exists():
            if not overwrite:
                raise InputError(f"a model named {entry.name!r} is already registered; pass --overwrite to replace it")
            trash = self.root / f"{_TRASH}{entry.name}-{uuid.uuid4().hex[:8]}"
            os.replace(target, trash)
        os.replace(staging, target)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        return target

    def sweep(self) -> None:
        """Remove trash and staging folders that runs which died left behind (a day old: a live run may own a newer one)."""
        if not self.root.is_dir():
            return
        now = time.time()
        for path in self.root.iterdir():
            stale = path.name.startswith(_STAGING) and now - path.stat().st_mtime > STALE_STAGING_SECONDS
            if path.name.startswith(_TRASH) or stale:
                shutil.rmtree(path, ignore_errors=True)

    def users(self, name: str, gpts_dir: Path) -> list[str]:
        """Ids of the GPTs in ``gpts_dir`` whose `model.name` is `registry:<name>` (broken specs included)."""
        wanted = PREFIX + name
        found = []
        for path in sorted(Path(gpts_dir).glob("*.yaml")) if Path(gpts_dir).is_dir() else []:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                continue
            if wanted not in text:
                continue
            try:
                data = yaml.safe_load(text)
                model = data.get("model") if isinstance(data, dict) else None
                uses = isinstance(model, dict) and model.get("name") == wanted
            except yaml.YAMLError:
                uses = True  # a spec we cannot parse but that names it: refuse rather than break it
            if uses:
                found.append(path.stem)
        return found

    def remove(self, name: str, *, gpts_dir: Path) -> None:
        """Delete a model, refused while a GPT uses it."""
        folder = self.path(name)
        users = self.users(name, gpts_dir)
        if users:
            raise InputError(
                f"model {name!r} is used by {', '.join(users)}; change their `model.name` before removing it"
            )
        trash = self.root / f"{_TRASH}{name}-{uuid.uuid4().hex[:8]}"
        os.replace(folder, trash)  # gone from the listing at once, even if deleting the files takes a while
        shutil.rmtree(trash, ignore_errors=True)


def resolve(name: str, data_dir: Path | None = None) -> Path:
    """The folder of `registry:NAME` (or a bare NAME) in the data folder's registry."""
    bare = name.removeprefix(PREFIX)
    return (Registry(data_dir) if data_dir is not None else Registry.from_env()).path(bare)
