"""Discover the GPTs in a folder, keep the broken ones from hurting the rest, cache their agents."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .agent import Agent
from .catalog import Catalog
from .errors import GPTBuilderError, SpecError, SpecProblem, UnknownGPTError
from .loader import LoadedSpec, load_spec

ModelFactory = Callable[..., object]
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass
class _Entry:
    path: Path
    fingerprint: Fingerprint
    loaded: LoadedSpec | None = None
    error: SpecError | None = None
    agent: Agent | None = None


class Store:
    """Every `*.yaml` spec directly inside ``gpts_dir``, re-read when its files change."""

    def __init__(
        self,
        gpts_dir: str | Path,
        *,
        data_dir: str | Path | None = None,
        model_factory: ModelFactory | None = None,
        catalog: Catalog | None = None,
    ):
        self.gpts_dir = Path(gpts_dir)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.catalog = catalog or Catalog()
        self._model_factory = model_factory
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.RLock()

    def refresh(self) -> None:
        """Pick up added, changed and removed spec files."""
        with self._lock:
            found = {path.stem: path for path in self._spec_files()}
            for gpt_id in set(self._entries) - set(found):
                del self._entries[gpt_id]
            for gpt_id, path in found.items():
                entry = self._entries.get(gpt_id)
                if (
                    entry is None
                    or entry.error is not None  # what it names (instructions, model file) may have appeared
                    or entry.path != path
                    or entry.fingerprint != _fingerprint(entry, path)
                ):
                    self._entries[gpt_id] = self._load(path)

    def specs(self) -> list[LoadedSpec]:
        """The valid GPTs in catalogue order: featured first, then by category shelf and name."""
        self.refresh()
        return self.catalog.order([e.loaded for e in self._entries.values() if e.loaded is not None])

    def errors(self) -> list[SpecError]:
        """The problems of every spec that failed to load, sorted by file."""
        self.refresh()
        return [e.error for _, e in sorted(self._entries.items()) if e.error is not None]

    def get(self, gpt_id: str) -> LoadedSpec:
        """One valid GPT; SpecError when its file is broken, UnknownGPTError when there is none."""
        return self._entry(gpt_id).loaded  # type: ignore[return-value]

    def agent(self, gpt_id: str) -> Agent:
        """The compiled agent for a GPT, rebuilt only when its files change."""
        with self._lock:
            entry = self._entry(gpt_id)
            if entry.agent is None:
                from .agent import compile_agent

                model = None
                if self._model_factory is not None:
                    model = self._model_factory(entry.loaded.spec.model, base_dir=entry.loaded.folder)
                entry.agent = compile_agent(entry.loaded, model=model, data_dir=self.data_dir)
            return entry.agent

    def _entry(self, gpt_id: str) -> _Entry:
        with self._lock:
            self.refresh()
            entry = self._entries.get(gpt_id)
            if entry is None:
                raise UnknownGPTError(gpt_id, self._entries)
            if entry.error is not None:
                raise entry.error
            return entry

    def _spec_files(self) -> list[Path]:
        if not self.gpts_dir.is_dir():
            return []
        files = list(self.gpts_dir.glob("*.yaml"))
        return sorted(p for p in files if p.is_file() and not p.name.startswith("."))

    def _load(self, path: Path) -> _Entry:
        try:
            loaded = load_spec(path)
        except SpecError as exc:
            return _Entry(path, _stat((path,)), error=exc)
        except GPTBuilderError as exc:  # e.g. a provider plugin that fails to import
            return _Entry(path, _stat((path,)), error=SpecError([SpecProblem(str(path), "", str(exc))]))
        except OSError as exc:  # vanished or unreadable between listing and reading
            problem = SpecProblem(str(path), "", f"cannot read file: {exc.strerror or exc}")
            return _Entry(path, _stat((path,)), error=SpecError([problem]))
        return _Entry(path, _stat(loaded.sources), loaded=loaded)


def _fingerprint(entry: _Entry, path: Path) -> Fingerprint:
    sources = entry.loaded.sources if entry.loaded else (path,)
    return _stat(sources)


def _stat(paths: tuple[Path, ...]) -> Fingerprint:
    out = []
    for path in paths:
        try:
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(path), -1, -1))
    return tuple(out)
