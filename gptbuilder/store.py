"""Discover the GPTs in a folder, keep the broken ones from hurting the rest, cache their agents."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .agent import Agent
from .catalog import Catalog
from .errors import GPTBuilderError, SpecError, SpecProblem, UnknownGPTError
from .fingerprint import Stamp, stamps
from .loader import LoadedSpec, load_spec

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from .builder import SaveResult

ModelFactory = Callable[..., "BaseChatModel"]
REFRESH_SECONDS = 1.0  # how stale the listing may be: requests do not each stat every spec file


@dataclass
class _Entry:
    path: Path
    stamps: tuple[Stamp, ...]
    loaded: LoadedSpec | None = None
    error: SpecError | None = None
    agent: Agent | None = None
    compiling: threading.Lock = field(default_factory=threading.Lock)

    def changed(self, path: Path) -> bool:
        """The spec must be read again: it moved, one of its files changed, or it was broken (what it names may exist now)."""
        sources = self.loaded.sources if self.loaded else (path,)
        return self.error is not None or self.path != path or self.stamps != stamps(sources)


class Store:
    """Every `*.yaml` spec directly inside ``gpts_dir``, re-read when its files change.

    The folder is checked at most once every ``refresh_seconds`` (``refresh(force=True)`` checks now,
    e.g. right after saving a spec); agents compile once per spec version, each GPT behind its own lock,
    so compiling one never holds up requests for another.
    """

    def __init__(
        self,
        gpts_dir: str | Path,
        *,
        data_dir: str | Path | None = None,
        model_factory: ModelFactory | None = None,
        catalog: Catalog | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.gpts_dir = Path(gpts_dir)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.catalog = catalog or Catalog()
        self.refresh_seconds = refresh_seconds
        self._model_factory = model_factory
        self._clock = clock
        self._entries: dict[str, _Entry] = {}  # replaced whole by refresh, so readers need no lock
        self._checked: float | None = None
        self._lock = threading.Lock()  # one refresh at a time

    def refresh(self, *, force: bool = False) -> None:
        """Pick up added, changed and removed spec files, unless the folder was checked less than a second ago."""
        if not force and self._fresh():
            return
        with self._lock:
            if not force and self._fresh():  # another thread refreshed while this one waited
                return
            found = {path.stem: path for path in self._spec_files()}
            entries = {}
            for gpt_id, path in found.items():
                entry = self._entries.get(gpt_id)
                entries[gpt_id] = self._load(path) if entry is None or entry.changed(path) else entry
            self._entries = entries
            self._checked = self._clock()

    def save(self, gpt_id: str, text: str, *, loaded_fingerprint: str | None = None) -> SaveResult:
        """Validate and atomically write a spec into the folder (`builder.save`); the store shows it at once."""
        from .builder import save

        result = save(gpt_id, text, self.gpts_dir, loaded_fingerprint=loaded_fingerprint)
        self.refresh(force=True)
        return result

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
        """The compiled agent for a GPT, rebuilt only when its files change (blocking: call it off the event loop)."""
        entry = self._entry(gpt_id)
        if entry.agent is None:
            with entry.compiling:  # concurrent first requests for this GPT build one agent
                if entry.agent is None:
                    entry.agent = self._compile(entry)
        return entry.agent

    def _compile(self, entry: _Entry) -> Agent:
        from .agent import compile_agent

        loaded = entry.loaded
        assert loaded is not None
        model = None
        if self._model_factory is not None:
            model = self._model_factory(loaded.spec.model, base_dir=loaded.folder)
        return compile_agent(loaded, model=model, data_dir=self.data_dir)

    def _fresh(self) -> bool:
        return self._checked is not None and self._clock() - self._checked < self.refresh_seconds

    def _entry(self, gpt_id: str) -> _Entry:
        self.refresh()
        entries = self._entries
        entry = entries.get(gpt_id)
        if entry is None:
            raise UnknownGPTError(gpt_id, entries)
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
            return _Entry(path, stamps((path,)), error=exc)
        except GPTBuilderError as exc:  # e.g. a provider plugin that fails to import
            return _Entry(path, stamps((path,)), error=SpecError([SpecProblem(str(path), "", str(exc))]))
        except OSError as exc:  # vanished or unreadable between listing and reading
            problem = SpecProblem(str(path), "", f"cannot read file: {exc.strerror or exc}")
            return _Entry(path, stamps((path,)), error=SpecError([problem]))
        return _Entry(path, stamps(loaded.sources), loaded=loaded)
