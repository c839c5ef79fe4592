"""Schema migrations (Alembic), run automatically when a process first uses the database.

Policy: a new table needs nothing (it is created on first use); a change to an existing table needs a
revision in ``versions/`` (``op.add_column`` and friends), which every replica applies on start, one at
a time. A database created before migrations existed is stamped at the baseline, then upgraded.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, inspect, text

SCRIPT_LOCATION = Path(__file__).parent
BASELINE = "0001"
_LOCK_ID = 0x6770_7462  # "gptb": one migrating replica at a time on PostgreSQL


def migrate(connection: Connection, metadata, *, script_location: Path = SCRIPT_LOCATION) -> None:
    """Bring the database on ``connection`` to the newest schema: revisions first, then any new tables."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["connection"] = connection
    config.attributes["metadata"] = metadata
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        known = set(inspect(connection).get_table_names()) & set(metadata.tables)
        if not known:
            metadata.create_all(connection)
            command.stamp(config, "head")
            return
        command.stamp(config, BASELINE)  # tables from before migrations: they are the baseline
    command.upgrade(config, "head")
    metadata.create_all(connection)
