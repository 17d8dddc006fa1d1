"""Engine from URL, SQLite tuned for ingestion, schema created or upgraded on first use.

Which URLs mean what is :mod:`inboxops.storage.url`'s job; every database failure becomes one
:class:`StorageError` line in :func:`database_errors`. URLs are only ever shown with their
password masked.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, NoSuchModuleError, OperationalError, SQLAlchemyError

from inboxops.errors import ConfigError, StorageError
from inboxops.storage.url import DatabaseUrl, parse_database_url, safe_url

log = logging.getLogger(__name__)

__all__ = [
    "HEAD",
    "NoDatabase",
    "current_revision",
    "database_errors",
    "make_engine",
    "open_database",
    "read_rows",
    "safe_url",
    "upgrade",
]

MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 120_000
HEAD = "0008"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # Generous: an hourly fetch waits for a backfill's short write transactions instead of
    # failing; writers keep transactions short (store.py) so the wait is seconds, not minutes.
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
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
    cur.execute("PRAGMA temp_store=MEMORY")  # staging tables of bulk writes never touch disk
    cur.close()


def make_engine(url: str | DatabaseUrl, *, create_parent: bool = False) -> Engine:
    """An engine for ``url`` (see :mod:`inboxops.storage.url`); the schema is not touched.

    ``create_parent`` creates a missing directory for a SQLite file: only for the default
    location, so a typo in an explicit path is an error rather than a new directory.
    """
    target = url if isinstance(url, DatabaseUrl) else parse_database_url(url)
    path = target.sqlite_path
    if path is not None:
        if not path.parent.exists():
            if not create_parent:
                raise ConfigError(
                    f"directory {path.parent} does not exist; create it first "
                    f"(for the database file {path.name})"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(target.url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(target.url, pool_pre_ping=True)
    except (NoSuchModuleError, ModuleNotFoundError):
        raise ConfigError(
            "the PostgreSQL driver (psycopg 3) is not installed; "
            "install it with `pip install 'inboxops[postgres]'`"
        ) from None


class NoDatabase(StorageError):
    """A read-only command found no inboxops database where it was pointed."""


@contextmanager
def database_errors(engine: Engine, doing: str = "open") -> Iterator[None]:
    """One line for any database failure, naming the database (password masked).

    The one place driver exceptions become :class:`StorageError`: connection refused, a bad
    ``?sslmode=``, a file that is not a database, a disk that is full.
    """
    where = engine.url.render_as_string(hide_password=True)
    try:
        yield
    except OperationalError as exc:
        raise StorageError(
            f"cannot {doing} database {where}: {_first_line(exc, engine)}; "
            "check --db / INBOXOPS_DB and that the server is running"
        ) from None
    except (DBAPIError, SQLAlchemyError) as exc:
        raise StorageError(
            f"cannot {doing} database {where}: {_first_line(exc, engine)}; check --db / "
            "INBOXOPS_DB, or run with -v for details"
        ) from None


def _first_line(exc: Exception, engine: Engine) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig or exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    password = engine.url.password
    if password:
        line = line.replace(str(password), "***")
    return line[:300]


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The schema revision, or None for an empty database."""
    with database_errors(engine, "read"), engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return str(row[0]) if row else None


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; returns (before, after)."""
    from alembic import command

    before = current_revision(engine)
    if before != HEAD:
        where = engine.url.render_as_string(hide_password=True)
        log.info("event=db_upgrade from=%s to=%s url=%s", before, HEAD, where)
        with database_errors(engine, "upgrade"):
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
    log.info(
        "event=db_created revision=%s url=%s", HEAD, engine.url.render_as_string(hide_password=True)
    )
    return True


def open_database(
    url: str | DatabaseUrl, *, create: bool = True, create_parent: bool = False
) -> Engine:
    """Engine for ``url`` with the schema at head: what every command calls.

    ``create=False`` is for read-only commands: they never create a file or a schema (a
    missing database is :class:`NoDatabase`), though an existing one is still upgraded.
    """
    target = url if isinstance(url, DatabaseUrl) else parse_database_url(url)
    if not create and target.sqlite_path is not None and not target.sqlite_path.exists():
        raise NoDatabase(
            f"no inboxops database at {target.sqlite_path} yet; the first import or fetch "
            "creates it (or point --db / INBOXOPS_DB at the right one)"
        )
    engine = make_engine(target, create_parent=create_parent)
    try:
        with database_errors(engine):
            revision = current_revision(engine)
            if revision is None:
                if not create:
                    raise NoDatabase(
                        f"{target.safe()} holds no inboxops schema yet; the first import or "
                        "fetch creates it"
                    )
                if create_fresh(engine):
                    return engine
                revision = current_revision(engine)
            if revision != HEAD:
                upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def read_rows(engine: Engine, *queries: Any, what: str) -> list[list[Any]]:
    """Run read-only ``queries`` on one connection; a failure is one StorageError line naming
    ``what`` was being read. The read side's single error path."""
    try:
        with engine.connect() as conn:
            return [list(conn.execute(q).all()) for q in queries]
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read {what}: {type(exc).__name__}") from None


# -- writing ----------------------------------------------------------------------------------


@contextmanager
def write_transaction(
    engine: Engine, images: Mapping[str, bytes] | None = None
) -> Iterator[Connection]:
    """One short write transaction; SQLite takes its write lock up front (BEGIN IMMEDIATE).

    A deferred SQLite transaction that reads before it writes fails at once ("database is
    locked", no busy wait) when another process committed in between; taking the lock first
    makes a concurrent writer *wait* (busy_timeout) instead.

    ``images`` (SQLite only): in-memory databases to attach for the transaction, by schema
    name, from their ``sqlite3`` serialized form. Each is a fresh copy (a retried transaction
    sees them unchanged) and is detached once the transaction ends, before the connection goes
    back to the pool (SQLite cannot detach inside a transaction).
    """
    if images and engine.dialect.name != "sqlite":
        raise ValueError("database images attach to SQLite only")
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.begin()
        dbapi: Any = conn.connection.dbapi_connection
        attached: list[str] = []
        failed = False
        try:
            try:
                for name, data in (images or {}).items():
                    dbapi.execute(f"ATTACH DATABASE ':memory:' AS {name}")
                    attached.append(name)
                    dbapi.deserialize(data, name=name)
                yield conn
            except BaseException:
                failed = True
                conn.rollback()
                raise
            conn.commit()
        finally:
            for name in attached:
                try:
                    dbapi.execute(f"DETACH DATABASE {name}")
                except sqlite3.Error:
                    conn.invalidate()  # never back to the pool with an image attached
                    if not failed:  # else the first error is the one to report
                        raise
                    break


_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization, deadlock, lock not available


def _orig(exc: BaseException) -> BaseException:
    return getattr(exc, "orig", None) or exc


def is_transient(exc: BaseException) -> bool:
    """Worth retrying the whole transaction: a deadlock, a serialization failure, or SQLite
    still locked after its busy timeout (another writer's long transaction)."""
    inner = _orig(exc)
    if isinstance(inner, sqlite3.OperationalError):
        text = str(inner).lower()
        return "locked" in text or "busy" in text
    return getattr(inner, "sqlstate", None) in _TRANSIENT_SQLSTATES


def is_data_error(exc: BaseException) -> bool:
    """The database refused a *value* (a constraint, a type, an encoding): the input's fault,
    not the database's, so that one input is quarantined and the batch goes on. Operational
    errors (connection lost, disk full, locked) are not data errors: they stop the run."""
    from sqlalchemy.exc import DataError, IntegrityError

    if isinstance(exc, DataError | IntegrityError):
        return True
    inner = _orig(exc)
    if isinstance(inner, sqlite3.IntegrityError | sqlite3.DataError):
        return True
    sqlstate = getattr(inner, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in ("22", "23")


def retrying(attempt: Any, *, tries: int = 5, sleep: Any = time.sleep, what: str = "write") -> Any:
    """Run ``attempt()`` (a whole transaction), again on transient failures, with backoff."""
    for n in range(tries):
        try:
            return attempt()
        except Exception as exc:
            if n == tries - 1 or not is_transient(exc):
                raise
            log.warning(
                "event=db_retry what=%s attempt=%d reason=%s", what, n + 1, str(_orig(exc))[:80]
            )
            sleep(min(0.2 * 2**n, 5.0))
    raise AssertionError("unreachable")


def insert_ignoring(conn: Connection, table: Any, keys: list[str]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=keys)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)


def upsert(conn: Connection, table: Any, keys: list[str], rows: list[dict[str, Any]]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` of every other column, for ``rows``."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table).values(rows)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).values(rows)
    others = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=keys, set_=others)
