"""Engine from URL, SQLite tuned for ingestion, schema created or upgraded on first use.

``sqlite:///path`` (the embedded default) and ``postgresql://...`` are accepted; a bare
``postgresql://`` or ``postgres://`` URL is pointed at the psycopg 3 driver. URLs are only ever
shown with their password masked.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from inboxops.errors import ConfigError, StorageError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0002"


def normalise_url(url: str) -> str:
    """Accept the URL spellings operators paste: ``postgres://``, a bare path, ``sqlite:///``."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser()}"
    return url


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    # Switching a new file to WAL can report "locked" at once, without the busy handler, while
    # another process does the same: retry briefly (only ever seen on a brand-new database).
    for attempt in range(50):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.1)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; the schema is not touched (see :func:`open_database`)."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "database URL is not valid; use sqlite:///path/to/file.db or postgresql://user@host/db"
        ) from None
    try:
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
    except NoSuchModuleError:
        raise ConfigError(
            f"no driver for {parsed.get_backend_name()}; "
            "install it with `pip install 'inboxops[postgres]'`"
        ) from None
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"database driver {exc.name} is not installed; "
            "install it with `pip install 'inboxops[postgres]'`"
        ) from None
    return engine


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return str(row[0]) if row else None


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; returns (before, after)."""
    from alembic import command

    before = current_revision(engine)
    if before != HEAD:
        log.info("event=db_upgrade from=%s to=%s url=%s", before, HEAD, safe_url(str(engine.url)))
        command.upgrade(_alembic_config(engine), "head")
    return before, HEAD


SCHEMA_LOCK = 0x1B0C5  # PostgreSQL advisory lock key: "inboxops schema"


def schema_lock(conn: Connection) -> None:
    """Serialise schema creation and migration between processes; released at transaction end.

    PostgreSQL: an advisory lock. SQLite: take the write lock up front (BEGIN IMMEDIATE), so a
    second process waits (busy_timeout) instead of failing on "table already exists".
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
    elif conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_fresh(engine: Engine) -> bool:
    """Build the head schema in one step on an empty database, stamped at HEAD.

    What Alembic's own docs recommend for new databases: replaying every migration (and
    importing Alembic at all) is only needed for databases that already hold data. Returns
    False, touching nothing, when the database is not empty.
    """
    from inboxops.storage.models import metadata

    with engine.begin() as conn:
        schema_lock(conn)
        if inspect(conn).get_table_names():
            return False  # another process got here first
        metadata.create_all(conn)
        conn.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD})
    log.info("event=db_created revision=%s url=%s", HEAD, safe_url(str(engine.url)))
    return True


def open_database(url: str) -> Engine:
    """Engine for ``url`` with the schema at head: what every command that stores calls."""
    engine = make_engine(url)
    try:
        revision = current_revision(engine)
        if revision is None and create_fresh(engine):
            return engine
        if revision != HEAD:
            upgrade(engine)
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).splitlines()[0] if exc.orig else "connection failed"
        raise StorageError(
            f"cannot open database {safe_url(str(engine.url))}: {reason}; "
            "check --db / INBOXOPS_DB and that the server is running"
        ) from None
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StorageError(
            f"cannot prepare database {safe_url(str(engine.url))}: {type(exc).__name__}; "
            "run `inboxops db upgrade -v` for details"
        ) from exc
    return engine


def read_rows(engine: Engine, *queries: Any, what: str) -> list[list[Any]]:
    """Run read-only ``queries`` on one connection; a failure is one StorageError line naming
    ``what`` was being read. The read side's single error path."""
    try:
        with engine.connect() as conn:
            return [list(conn.execute(q).all()) for q in queries]
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read {what}: {type(exc).__name__}") from None
