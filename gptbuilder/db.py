"""The database behind conversations, feedback, usage and widget sessions.

SQLite under the data folder by default; any SQLAlchemy URL (PostgreSQL for several `serve`
replicas) from ``GPTBUILDER_DATABASE_URL``. Tables are created on first use.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from .errors import DatabaseError

DATABASE_URL_ENV = "GPTBUILDER_DATABASE_URL"
# Modules that declare tables on Base; all are imported before the schema is created, so whichever
# process starts first (store, API, widget) creates every table.
TABLE_MODULES = (
    "gptbuilder.access",
    "gptbuilder.history",
    "gptbuilder.server.responses_store",
    "gptbuilder.server.signing",
    "gptbuilder.server.usage",
    "gptbuilder.server.widget_sessions",
)


class Base(DeclarativeBase):
    """Declarative base of every gptbuilder table; models register here so one create_all makes them all."""


def database_url(data_dir: str | Path) -> str:
    """``GPTBUILDER_DATABASE_URL`` when set, else a SQLite file under ``data_dir``."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        # plain postgresql:// means psycopg2 to SQLAlchemy; we ship psycopg 3
        return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url
    return f"sqlite:///{Path(data_dir) / 'gptbuilder.db'}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer (UI and API side by side)
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """An engine and session factory for one URL; the schema is created on first use."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._ready = False
        self._lock = threading.Lock()

    @classmethod
    def for_data_dir(cls, data_dir: str | Path) -> Database:
        """The database configured for this data folder (see `database_url`)."""
        return cls(database_url(data_dir))

    def create_schema(self) -> None:
        """Create or migrate the schema to the newest version (safe to call from every replica)."""
        with self._lock:
            if self._ready:
                return
            for module in TABLE_MODULES:
                importlib.import_module(module)

            from .migrations import migrate

            try:
                with self.engine.begin() as connection:
                    migrate(connection, Base.metadata)
            except SQLAlchemyError as exc:
                raise DatabaseError(f"cannot prepare the database at {self.engine.url!r}: {exc}") from exc
            self._ready = True

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error; database errors become DatabaseError."""
        self.create_schema()
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise DatabaseError(f"database error: {exc.__class__.__name__}: {exc}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()
