"""Schema by migrations, created or upgraded on first use, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, inspect, text

from inboxops.cli import root
from inboxops.errors import ConfigError, StorageError
from inboxops.storage.db import (
    HEAD,
    NoDatabase,
    current_revision,
    make_engine,
    open_database,
    upgrade,
    write_transaction,
)
from inboxops.storage.models import metadata
from inboxops.storage.url import parse_database_url
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


def test_url_spellings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each spelling has one documented meaning (docs/db.md)."""
    monkeypatch.chdir(tmp_path)
    pg = "postgresql+psycopg://u@h/db"
    assert parse_database_url("postgres://u@h/db").url.render_as_string() == pg
    assert parse_database_url("postgresql://u@h/db").url.render_as_string() == pg
    assert parse_database_url(pg).url.render_as_string() == pg
    assert parse_database_url("/tmp/x.db").sqlite_path == Path("/tmp/x.db")
    assert parse_database_url("x.db").sqlite_path == Path("x.db")
    assert parse_database_url("sqlite:///x.db").sqlite_path == Path("x.db")
    assert parse_database_url("sqlite:////tmp/x.db").sqlite_path == Path("/tmp/x.db")
    ssl = parse_database_url("postgresql://u@h/db?sslmode=require").url
    assert ssl.query == {"sslmode": "require"}


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("mysql://u@h/db", "scheme 'mysql' is not supported"),
        ("http://example.com/db", "scheme 'http' is not supported"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite://relative.db", "write sqlite:///relative.db"),
        ("sqlite:relative.db", "did you mean sqlite:///relative.db"),
        ("postgresql+psycopg2://u@h/db", "psycopg2"),
        ("postgresql://u@h", "names no database"),
        ("sqlite:////nonexistent-dir/x.db", "directory /nonexistent-dir does not exist"),
    ],
)
def test_unsupported_urls_are_config_errors_through_the_cli(
    url: str, needle: str, tmp_path: Path
) -> None:
    """Exit 2 with one line saying what to write instead; nothing created anywhere."""
    result = CliRunner().invoke(root, ["--db", url, "dmarc", "import", str(tmp_path)])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert line.startswith("Error: ")
    assert "\n" not in line
    assert needle in line
    assert "inboxops[postgres]" not in line
    assert not Path("/nonexistent-dir").exists()


def test_empty_db_flag_is_a_usage_error() -> None:
    result = CliRunner().invoke(root, ["--db", "", "db", "status"])
    assert result.exit_code == 2
    assert "--db" in result.stderr
    assert "is empty" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["db", "status"],
        ["db", "upgrade"],
        ["dmarc", "summary"],
        ["dmarc", "summary", "--by", "org"],
        ["dmarc", "import", "."],
    ],
)
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://inboxops:s3cr3tpw@127.0.0.1:1/nope",
        "postgresql://postgres@127.0.0.1:5432/test?sslmode=bogus",
    ],
)
def test_database_errors_are_one_line_exit_1(url: str, args: list[str], tmp_path: Path) -> None:
    """Unreachable server, bad libpq option: one line, exit 1, no traceback, no password."""
    if args[-1] == ".":
        args = [*args[:-1], str(tmp_path)]
    result = CliRunner().invoke(root, ["--db", url, *args])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "s3cr3tpw" not in result.output
    assert "Traceback" not in result.output


def test_unreachable_database_is_one_line_without_password() -> None:

    with pytest.raises(StorageError) as info:
        open_database("postgresql://inboxops:s3cr3tpw@127.0.0.1:1/nope")
    message = str(info.value)
    assert "s3cr3tpw" not in message
    assert "\n" not in message
    assert "INBOXOPS_DB" in message


def test_read_only_commands_create_nothing(tmp_path: Path) -> None:
    """`db status` and the views on a database that does not exist: no file appears."""
    target = tmp_path / "nothing-here.db"
    runner = CliRunner()
    status = runner.invoke(root, ["--db", str(target), "db", "status", "--json"])
    assert status.exit_code == 0
    assert json.loads(status.stdout)["revision"] is None
    assert "no database yet" in runner.invoke(root, ["--db", str(target), "db", "status"]).stdout
    for args in (["dmarc", "summary"], ["dmarc", "tls"], ["dmarc", "quarantine"]):
        result = runner.invoke(root, ["--db", str(target), *args])
        assert result.exit_code == 1
        assert "no inboxops database at" in result.stderr
    assert not target.exists()
    with pytest.raises(NoDatabase):
        open_database(str(target), create=False)
    assert not target.exists()


def test_sqlite_parent_directory_must_exist_except_the_default(tmp_path: Path) -> None:
    explicit = tmp_path / "deep" / "dir" / "x.db"
    with pytest.raises(ConfigError, match="does not exist"):
        open_database(f"sqlite:///{explicit}")
    assert not (tmp_path / "deep").exists()
    engine = open_database(f"sqlite:///{explicit}", create_parent=True)  # the default location
    engine.dispose()
    assert explicit.exists()


def test_every_text_column_is_cleaned_on_bind() -> None:
    """Every String/Text/JSON column present and future goes through storage/types.py."""
    from sqlalchemy import JSON, String, Text
    from sqlalchemy.types import TypeDecorator

    from inboxops.storage.types import CleanJSON, CleanString, CleanText

    raw_text = []
    for table in metadata.tables.values():
        for column in table.columns:
            kind = column.type
            if isinstance(kind, TypeDecorator):
                assert isinstance(kind, CleanString | CleanText | CleanJSON), column
            elif isinstance(kind, String | Text | JSON):
                raw_text.append(f"{table.name}.{column.name}")
    assert raw_text == []


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


def test_0007_gives_stored_attempts_their_message_and_keeps_the_figures(db_url: str) -> None:
    """A database of 0006 (every recipient had a row; attempts did not know their message)
    upgraded: each attempt gets its message's key, the rows of delivered or bounced
    recipients go, and a notice read afterwards still retracts that message's attempts."""
    from datetime import UTC, date, datetime

    from alembic import command

    from inboxops.config import Settings
    from inboxops.operators.domains import domain_classifier
    from inboxops.reputation.collect import Batch, digest64, queue_digest
    from inboxops.reputation.store import ReputationStore
    from inboxops.storage.db import _alembic_config
    from inboxops.storage.models import rep_recipients

    engine = make_engine(db_url)
    command.upgrade(_alembic_config(engine), "0006")
    when = datetime(2026, 11, 20, 9, tzinfo=UTC)
    scope = "out05/postfix-out05"
    people = [("Q1", "a@x.example", "sent"), ("Q1", "b@x.example", "deferred")]
    people.append(("Q2", "c@x.example", "bounced"))
    attempt = {
        "ts": when,
        "day": date(2026, 11, 20),
        "syslog_name": "postfix-out05/smtp",
        "domain": "x.example",
        "operator": "other",
        "segment": "",
        "relay_host": "mx.x.example",
        "dsn": "2.0.0",
        "code": 250,
        "reason": "accepted",
        "reply": None,
    }
    with engine.begin() as conn:
        for n, (qid, rcpt, status) in enumerate(people):
            rkey = digest64(f"{scope} {qid} {rcpt}")
            conn.execute(  # the table as 0006 had it (the model has moved on)
                text(
                    f"INSERT INTO rep_attempts (fp, rkey, status, {', '.join(attempt)}) "
                    f"VALUES (:fp, :rkey, :status, {', '.join(f':{k}' for k in attempt)})"
                ),
                {"fp": n + 1, "rkey": rkey, "status": status, **_bound(engine, attempt)},
            )
            conn.execute(
                rep_recipients.insert().values(
                    rkey=rkey,
                    scope=scope,
                    queue_id=qid,
                    domain="x.example",
                    syslog_name="postfix-out05/smtp",
                    operator="other",
                    segment="",
                    status=status,
                    last_ts=when,
                    final_day=date(2026, 11, 20),
                )
            )
    upgrade(engine)
    with engine.connect() as conn:
        keys = dict(conn.execute(text("SELECT fp, qkey FROM rep_attempts")).all())
        kept = conn.execute(text("SELECT status FROM rep_recipients")).scalars().all()
    assert keys == {1: queue_digest(scope, "Q1"), 2: queue_digest(scope, "Q1")} | {
        3: queue_digest(scope, "Q2")
    }
    assert kept == ["deferred"]
    store = ReputationStore(
        engine, domain_classifier(engine, Settings(), offline=True), offline=True
    )
    store.write(Batch([], [], [(scope, "Q1", when.timestamp())]))  # Q1 was a notice after all
    store.rebuild()
    with engine.connect() as conn:
        left = conn.execute(text("SELECT fp FROM rep_attempts")).scalars().all()
        daily = conn.execute(text("SELECT delivered, bounced, pending FROM rep_daily")).all()
    assert left == [3]
    assert [tuple(r) for r in daily] == [(0, 1, 0)]
    command.downgrade(_alembic_config(engine), "0006")  # the bounced recipient's row is back
    with engine.connect() as conn:
        back = conn.execute(text("SELECT rkey, status FROM rep_recipients")).all()
        columns = {c["name"] for c in inspect(conn).get_columns("rep_attempts")}
    engine.dispose()
    assert [tuple(r) for r in back] == [(digest64(f"{scope} Q2 c@x.example"), "bounced")]
    assert "qkey" not in columns


def test_an_image_is_attached_for_one_transaction_and_each_time_afresh(tmp_path: Path) -> None:
    """``write_transaction(images=...)``: a serialized SQLite database is readable and
    writable in the transaction, gone after it (commit or failure), and the same bytes attach
    again unchanged: a retried transaction starts from the image as it was sent."""
    import sqlite3

    source = sqlite3.connect(":memory:")
    source.execute("CREATE TABLE stage (n)")
    source.executemany("INSERT INTO stage VALUES (?)", [(1,), (2,), (3,)])
    source.commit()
    data = source.serialize()
    engine = open_database(f"sqlite:///{tmp_path / 'images.db'}")
    with write_transaction(engine) as conn:
        conn.exec_driver_sql("CREATE TABLE kept (n)")

    def names(conn: object) -> set[str]:
        rows = conn.exec_driver_sql("PRAGMA database_list").all()  # type: ignore[attr-defined]
        return {r[1] for r in rows}

    with write_transaction(engine, {"img": data}) as conn:
        conn.exec_driver_sql("DELETE FROM img.stage WHERE n = 2")
        conn.exec_driver_sql("INSERT INTO kept SELECT n FROM img.stage")

    def fail() -> None:
        with write_transaction(engine, {"img": data}) as conn:
            conn.exec_driver_sql("INSERT INTO kept SELECT n FROM img.stage")
            raise RuntimeError("a failure mid-transaction")

    with pytest.raises(RuntimeError):
        fail()
    with write_transaction(engine, {"img": data}) as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM img.stage").scalar() == 3
    with engine.connect() as conn:
        assert "img" not in names(conn)
        assert [r[0] for r in conn.exec_driver_sql("SELECT n FROM kept ORDER BY n")] == [1, 3]
    engine.dispose()


def _bound(engine: Engine, values: dict[str, object]) -> dict[str, object]:
    """Values for a plain-SQL insert, as SQLAlchemy's column types would store them (SQLite
    keeps times as naive UTC text)."""
    from datetime import date, datetime

    from inboxops.storage.raw import Raw

    with engine.connect() as conn:
        raw = Raw(conn)
        return {
            k: raw.dt(v) if isinstance(v, datetime) else raw.day(v) if isinstance(v, date) else v
            for k, v in values.items()
        }


def test_0008_numbers_stored_attempts_in_day_order_and_keeps_each_line_once(
    db_url: str, tmp_path: Path
) -> None:
    """A database of 0007 (attempts keyed by their line digest) upgraded: every attempt is
    kept as it was, numbered in day and time order; the same log read again adds nothing;
    and a downgrade gives the attempts back."""
    from alembic import command

    from inboxops.config import ReputationSettings, Settings
    from inboxops.demo.maillog import write_maillog
    from inboxops.operators.classify import Classifier
    from inboxops.operators.domains import domain_classifier
    from inboxops.reputation.ingest import ReputationIngestor
    from inboxops.reputation.store import ReputationStore
    from inboxops.storage.db import _alembic_config

    path = tmp_path / "fleet.log"
    write_maillog(path, lines=6_000, seed=3, start=datetime(2026, 11, 3, tzinfo=UTC), days=3)
    os.utime(path, (datetime(2026, 11, 24, tzinfo=UTC).timestamp(),) * 2)
    rep = ReputationSettings(internal_domains=("int.example",), probe_prefixes=("seed-",))
    columns = "fp, rkey, ts, day, syslog_name, operator, status, reason, reply, qkey"

    def ingest(engine: Engine) -> int:
        store = ReputationStore(
            engine, domain_classifier(engine, Settings(), offline=True), offline=True
        )
        return ReputationIngestor(rep, store, Classifier()).ingest([str(path)]).new

    def stored(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        with engine.connect() as conn:
            attempts = conn.execute(text(f"SELECT {columns} FROM rep_attempts ORDER BY fp"))
            daily = conn.execute(text("SELECT * FROM rep_daily ORDER BY 1, 2, 3, 4"))
            return [tuple(r) for r in attempts], [tuple(r) for r in daily]

    source = open_database(f"sqlite:///{tmp_path / 'source.db'}")
    assert ingest(source) > 300
    engine = make_engine(db_url)
    command.upgrade(_alembic_config(engine), "0007")
    with source.connect() as read, engine.begin() as write:  # the same rows, as 0007 held them
        for table in ("rep_attempts", "rep_recipients", "rep_expiries", "rep_daily"):
            names = [c.name for c in metadata.tables[table].columns if c.name != "id"]
            rows = read.execute(text(f"SELECT {', '.join(names)} FROM {table}")).all()
            marks = ", ".join(f":{n}" for n in names)
            insert = text(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})")
            write.execute(insert, [_bound(engine, dict(zip(names, r, strict=True))) for r in rows])
    source.dispose()
    before = stored(engine)
    assert len(before[0]) > 300
    upgrade(engine)
    assert stored(engine) == before
    with engine.connect() as conn:
        order = conn.execute(text("SELECT day, ts, fp FROM rep_attempts ORDER BY id")).all()
    assert [tuple(r) for r in order] == sorted(tuple(r) for r in order)
    assert ingest(engine) == 0  # each line once, by its digest
    assert stored(engine) == before
    command.downgrade(_alembic_config(engine), "0007")
    assert stored(engine) == before
    with engine.connect() as conn:
        assert "id" not in {c["name"] for c in inspect(conn).get_columns("rep_attempts")}
    engine.dispose()
