"""Schema migrations: a new database is created whole, an old one is upgraded in place, data kept."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect, text

from gptbuilder.db import Base, Database
from gptbuilder.history import History
from gptbuilder.migrations import BASELINE, SCRIPT_LOCATION, migrate

ADD_PINNED = '''
"""Conversations can be pinned (a test revision)."""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("conversations", sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false()))
'''


def version(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def test_a_new_database_is_created_whole_and_stamped_at_the_newest_revision(tmp_path):
    db = Database.for_data_dir(tmp_path)
    History(db).start("assistant")
    tables = set(inspect(db.engine).get_table_names())
    assert {"conversations", "messages", "feedback", "ratings", "api_usage"} <= tables
    assert version(db) == BASELINE


def test_the_first_process_creates_every_table_gptbuilder_declares(tmp_path):
    # A fresh interpreter that imports only the database module, as a CLI command would: every table a
    # module declares must exist after the first create_schema, or a later feature finds its table missing.
    script = (
        "import pkgutil, importlib, sys, gptbuilder\n"
        "from sqlalchemy import inspect\n"
        "from gptbuilder.db import Base, Database\n"
        f"db = Database.for_data_dir({str(tmp_path)!r}); db.create_schema()\n"
        "created = set(inspect(db.engine).get_table_names())\n"
        "for info in pkgutil.walk_packages(gptbuilder.__path__, 'gptbuilder.'):\n"
        "    skip = ('gptbuilder.ui', 'gptbuilder.cli', 'gptbuilder.__main__')\n"
        "    if '.migrations' not in info.name and not info.name.startswith(skip):\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(set(Base.metadata.tables) - created))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_a_database_from_before_migrations_is_stamped_and_keeps_its_rows(tmp_path):
    old = Database.for_data_dir(tmp_path)
    for module in ("gptbuilder.history", "gptbuilder.server.usage", "gptbuilder.server.widget_sessions"):
        __import__(module)
    Base.metadata.create_all(old.engine)  # what 0.1 did: tables, no version table
    with old.engine.begin() as connection:
        connection.execute(text("INSERT INTO conversations (id, gpt_id, title, channel, owner, created_at, updated_at) "
                                "VALUES ('c1', 'a', 'kept', 'store', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    old.dispose()
    db = Database.for_data_dir(tmp_path)
    assert History(db).get("c1").title == "kept"
    assert version(db) == BASELINE


def test_a_pending_revision_changes_an_existing_table_in_place(tmp_path):
    scripts = tmp_path / "migrations"
    shutil.copytree(SCRIPT_LOCATION, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "0002_pinned.py").write_text(ADD_PINNED, encoding="utf-8")
    db = Database.for_data_dir(tmp_path)
    conversation = History(db).start("assistant", title="before the upgrade")
    for _ in range(2):  # the second run finds nothing to do
        with db.engine.begin() as connection:
            migrate(connection, Base.metadata, script_location=scripts)
    columns = {c["name"] for c in inspect(db.engine).get_columns("conversations")}
    assert "pinned" in columns
    assert version(db) == "0002"
    assert History(db).get(conversation.id).title == "before the upgrade"


def test_the_shipped_revisions_form_one_chain_from_the_baseline():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1
    assert [r.revision for r in script.walk_revisions()][-1] == BASELINE
    assert Path(SCRIPT_LOCATION / "env.py").is_file()
