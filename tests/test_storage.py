"""Schema by migrations, created or upgraded on first use, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, inspect, text

from inboxops.cli import root
from inboxops.errors import ConfigError, StorageError
from inboxops.storage.db import (
    HEAD,
    current_revision,
    make_engine,
    normalise_url,
    open_database,
    upgrade,
)
from inboxops.storage.models import metadata
from tests.conftest import PG_ADMIN_URL


def test_first_use_creates_schema_at_head(db_url: str) -> None:
    engine = open_database(db_url)
    try:
        assert current_revision(engine) == HEAD
        tables = set(inspect(engine).get_table_names())
        assert set(metadata.tables) <= tables
    finally:
        engine.dispose()


def _shape(engine: Engine) -> dict[str, object]:
    insp = inspect(engine)
    shape: dict[str, object] = {}
    for name in sorted(metadata.tables):
        shape[name] = (
            sorted((c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(name)),
            sorted(insp.get_pk_constraint(name)["constrained_columns"]),
            sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(name)),
            sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(name)),
            sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in insp.get_foreign_keys(name)
            ),
        )
    return shape


def test_migrations_and_fresh_create_build_the_same_schema(db_url: str, tmp_path: Path) -> None:
    """Alembic's revisions (existing databases) and create_all (new ones) must agree exactly."""
    migrated = make_engine(db_url)
    upgrade(migrated)
    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    if db_url.startswith("postgresql"):
        # a second schema on the same server: the search_path option names it
        fresh_url = db_url.replace("search_path%3D", "search_path%3Dfresh_")
        admin = create_engine(PG_ADMIN_URL)
        schema = fresh_url.rsplit("search_path%3D", 1)[1]
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    fresh = open_database(fresh_url)
    try:
        assert current_revision(fresh) == current_revision(migrated) == HEAD
        assert _shape(fresh) == _shape(migrated)
    finally:
        migrated.dispose()
        fresh.dispose()
        if db_url.startswith("postgresql"):
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


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


def test_concurrent_first_use_creates_the_schema_once(db_url: str) -> None:
    """Two processes (here: threads with their own engines) opening the same empty database at
    once: one creates the schema, the other waits and uses it."""
    import threading

    errors: list[BaseException] = []
    engines: list[Engine] = []

    def opener() -> None:
        try:
            engines.append(open_database(db_url))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for e in engines:
        e.dispose()
    assert errors == []
    engine = open_database(db_url)
    assert current_revision(engine) == HEAD
    engine.dispose()
