"""Schema by migrations, created or upgraded on first use, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from inboxops.cli import root
from inboxops.errors import ConfigError, StorageError
from inboxops.storage.db import HEAD, current_revision, make_engine, normalise_url, open_database
from inboxops.storage.models import metadata


def test_first_use_creates_schema_at_head(db_url: str) -> None:
    engine = open_database(db_url)
    try:
        assert current_revision(engine) == HEAD
        tables = set(inspect(engine).get_table_names())
        assert set(metadata.tables) <= tables
    finally:
        engine.dispose()


def test_migration_matches_models(db_url: str) -> None:
    """The Alembic revision builds exactly the tables and columns models.py declares."""
    engine = open_database(db_url)
    try:
        insp = inspect(engine)
        for name, table in metadata.tables.items():
            columns = {c["name"] for c in insp.get_columns(name)}
            assert columns == {c.name for c in table.columns}, name
    finally:
        engine.dispose()


def test_db_upgrade_command_is_idempotent(db_url: str) -> None:
    runner = CliRunner()
    first = runner.invoke(root, ["--db", db_url, "db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert f"to {HEAD}" in first.output
    second = runner.invoke(root, ["--db", db_url, "db", "upgrade"])
    assert second.exit_code == 0
    assert "already at revision" in second.output
    status = runner.invoke(root, ["--db", db_url, "db", "status"])
    assert "up to date" in status.output


def test_url_spellings() -> None:
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("/tmp/x.db") == "sqlite:////tmp/x.db"


def test_unreachable_database_is_one_line_without_password() -> None:
    with pytest.raises(StorageError) as info:
        open_database("postgresql://inboxops:s3cr3tpw@127.0.0.1:1/nope")
    message = str(info.value)
    assert "s3cr3tpw" not in message
    assert "\n" not in message
    assert "INBOXOPS_DB" in message


def test_unknown_driver_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="driver"):
        make_engine("mysql+nosuchdriver://u@h/db")


def test_sqlite_parent_directory_is_created(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'x.db'}")
    engine.dispose()
    assert (tmp_path / "deep" / "dir" / "x.db").exists()
