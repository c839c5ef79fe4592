"""Shared fixtures: every test works in its own folders, offline, never on the user's files."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Nothing may reach a model hub; the models tests use ship in PyPI packages.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


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
