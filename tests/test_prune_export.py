"""`inboxops dmarc prune` and `inboxops dmarc export` on both databases.

Data goes in through the real import path (``Ingestor`` over ``DatabaseSink``); the commands
are driven through the CLI where an operator meets them. What prune must never do is checked
by comparing every row of every table (an unrelated one included) before and after.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, Table, func, select, text, update
from sqlalchemy.exc import DataError, IntegrityError

from inboxops.cli import root
from inboxops.cli.context import AppContext
from inboxops.dmarc import prune as pruning
from inboxops.dmarc.export import COLUMNS, csv_cell, replacing
from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.store import DatabaseSink
from inboxops.retention import parse_age
from inboxops.storage.db import open_database
from inboxops.storage.models import (
    alert_state,
    dmarc_auth_results,
    dmarc_records,
    dmarc_reports,
    failure_reports,
    metadata,
    quarantine,
    tls_failures,
    tls_policies,
    tls_reports,
)
from tests.helpers import NOW, aggregate_xml

CUTOFF = NOW - timedelta(days=400)  # what `--older-than 400d` means at NOW
SECOND = timedelta(seconds=1)
HALF_DAY = timedelta(hours=12)


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(root, args, env=env, obj=AppContext(clock=lambda: NOW))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = open_database(db_url)
    yield eng
    eng.dispose()


# -- building data through the import path ------------------------------------------------------


def aggregate(
    report_id: str,
    window_at: datetime,
    *,
    records: int = 3,
    org: str = "google.com",
    domain: str = "example.com",
) -> bytes:
    """An aggregate report whose date range is centred on ``window_at`` (its window instant)."""
    rows = [(f"10.0.{i // 250}.{i % 250 + 1}", i + 1, i % 2 == 0) for i in range(records)]
    return aggregate_xml(
        org=org,
        report_id=report_id,
        domain=domain,
        begin=window_at - HALF_DAY,
        end=window_at + HALF_DAY,
        rows=rows,
    )


def undated(report_id: str) -> bytes:
    return re.sub(rb"<date_range>.*?</date_range>", b"", aggregate(report_id, NOW))


def tls(report_id: str, window_at: datetime) -> bytes:
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return json.dumps(
        {
            "organization-name": "Company-X",
            "date-range": {
                "start-datetime": (window_at - HALF_DAY).strftime(stamp),
                "end-datetime": (window_at + HALF_DAY).strftime(stamp),
            },
            "contact-info": "sts-reporting@company-x.example",
            "report-id": report_id,
            "policies": [
                {
                    "policy": {"policy-type": "sts", "policy-domain": "example.com"},
                    "summary": {
                        "total-successful-session-count": 50,
                        "total-failure-session-count": 3,
                    },
                    "failure-details": [
                        {"result-type": "certificate-expired", "failed-session-count": 2},
                        {"result-type": "validation-failure", "failed-session-count": 1},
                    ],
                }
            ],
        }
    ).encode()


def ruf(n: int, arrival: datetime | None) -> bytes:
    """An RFC 6591 failure report; without ``arrival`` it ages by when it was stored."""
    arrival_line = f"Arrival-Date: {format_datetime(arrival)}\n" if arrival else ""
    return (
        "From: dmarc@reporter.example\nTo: ruf@example.com\n"
        f"Subject: DMARC failure report {n}\nMessage-ID: <ruf{n}@reporter.example>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nA message failed DMARC.\n"
        "--b\nContent-Type: message/feedback-report\n\n"
        f"Feedback-Type: auth-failure\nVersion: 1\n{arrival_line}"
        f"Source-IP: 203.0.113.{n}\nReported-Domain: example.com\nAuth-Failure: dmarc\n\n"
        "--b\nContent-Type: text/rfc822-headers\n\n"
        f"From: someone@example.com\nSubject: hello {n}\nMessage-ID: <orig{n}@example.com>\n\n"
        "--b--\n"
    ).encode()


def ingest(engine: Engine, *items: tuple[str, bytes], refused: int = 0) -> None:
    ingestor = Ingestor(DatabaseSink(engine))
    failed = 0
    for name, data in items:
        failed += len(ingestor.ingest_bytes(data, name).failed)
    assert failed == refused


def pk_of(engine: Engine, table: Table, column: str, value: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(table.c.id).where(table.c[column] == value)).scalar_one())


def age(engine: Engine, table: Table, pk: int, stored_at: datetime) -> None:
    """stored_at is the real clock at import: make this row look as if stored long ago."""
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.id == pk).values(stored_at=stored_at))


# -- looking at every row ---------------------------------------------------------------------

# (table, column holding the id of the report or row a prune deletes it with)
OWNED = [
    (dmarc_reports, "id"),
    (dmarc_records, "report_pk"),
    (dmarc_auth_results, "report_pk"),
    (tls_reports, "id"),
    (tls_policies, "report_pk"),
    (tls_failures, "report_pk"),
    (failure_reports, "id"),
    (quarantine, "id"),
]


def _frozen(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def filler(table: Table, when: datetime) -> dict[str, Any]:
    """A row for ``table`` made from its column types, dated ``when``: whatever columns other
    capabilities give their tables, a row dated before the cutoff is there to be kept."""
    values: dict[str, Any] = {}
    for c in table.columns:
        kind = type(c.type.impl if hasattr(c.type, "impl") else c.type).__name__.lower()
        if c.primary_key and c.autoincrement is True:
            continue
        if "datetime" in kind:
            values[c.name] = when
        elif "date" in kind:
            values[c.name] = when.date()
        elif "int" in kind:
            values[c.name] = 1
        elif "float" in kind or "numeric" in kind:
            values[c.name] = 1.0
        elif "bool" in kind:
            values[c.name] = False
        elif "json" in kind:
            values[c.name] = []
        elif "binary" in kind:
            values[c.name] = b"x"
        else:
            length = getattr(c.type, "length", None)
            values[c.name] = f"kept-{c.name}"[: length or None]
    return values


def snapshot(engine: Engine) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table: inboxops's own (reputation, DNS, alert state...) and an
    operator's unrelated one."""
    out: dict[str, set[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for t in metadata.sorted_tables:
            out[t.name] = {tuple(_frozen(v) for v in row) for row in conn.execute(select(t))}
        out["operator_notes"] = {
            tuple(row) for row in conn.execute(text("SELECT id, note FROM operator_notes"))
        }
    return out


def without(
    before: dict[str, set[tuple[Any, ...]]], gone: dict[str, set[int]]
) -> dict[str, set[tuple[Any, ...]]]:
    """``before`` minus the rows owned by the ``gone`` ids (per parent table name)."""
    parent = {
        "dmarc_reports": "dmarc_reports",
        "dmarc_records": "dmarc_reports",
        "dmarc_auth_results": "dmarc_reports",
        "tls_reports": "tls_reports",
        "tls_policies": "tls_reports",
        "tls_failures": "tls_reports",
        "failure_reports": "failure_reports",
        "quarantine": "quarantine",
    }
    out = dict(before)
    for table, column in OWNED:
        index = [c.name for c in table.columns].index(column)
        ids = gone.get(parent[table.name], set())
        out[table.name] = {r for r in before[table.name] if r[index] not in ids}
    return out


def orphans(engine: Engine) -> tuple[int, int]:
    """Records and auth results whose report is gone (a half-deleted report)."""
    reports = select(dmarc_reports.c.id)
    with engine.connect() as conn:
        return (
            int(
                conn.execute(
                    select(func.count())
                    .select_from(dmarc_records)
                    .where(dmarc_records.c.report_pk.not_in(reports))
                ).scalar_one()
            ),
            int(
                conn.execute(
                    select(func.count())
                    .select_from(dmarc_auth_results)
                    .where(dmarc_auth_results.c.report_pk.not_in(reports))
                ).scalar_one()
            ),
        )


def per_report(engine: Engine) -> dict[int, tuple[int, int]]:
    """report id -> (records, auth results) as stored."""
    with engine.connect() as conn:
        recs = dict(
            conn.execute(
                select(dmarc_records.c.report_pk, func.count()).group_by(dmarc_records.c.report_pk)
            ).all()
        )
        auths = dict(
            conn.execute(
                select(dmarc_auth_results.c.report_pk, func.count()).group_by(
                    dmarc_auth_results.c.report_pk
                )
            ).all()
        )
        ids = [int(i) for i in conn.execute(select(dmarc_reports.c.id)).scalars()]
    return {i: (int(recs.get(i, 0)), int(auths.get(i, 0))) for i in ids}


# -- prune: what goes and what stays ----------------------------------------------------------


def test_prune_deletes_exactly_what_is_older_than_the_cutoff(engine: Engine, db_url: str) -> None:
    """Reports just inside the cutoff, every other table and every row of other reports
    survive; a dry run counts exactly what the real run then deletes, and deletes nothing."""
    ingest(
        engine,
        ("old-1.xml", aggregate("old-1", CUTOFF - timedelta(days=30), records=3)),
        ("old-2.xml", aggregate("old-2", CUTOFF - timedelta(days=1), records=5, org="Yahoo")),
        ("edge-out.xml", aggregate("edge-out", CUTOFF - SECOND, records=3)),
        ("edge-at.xml", aggregate("edge-at", CUTOFF, records=4)),  # not *older*: stays
        ("edge-in.xml", aggregate("edge-in", CUTOFF + SECOND, records=2)),
        ("new.xml", aggregate("new", NOW - timedelta(days=2), records=6, org="Yahoo")),
        ("undated-old.xml", undated("undated-old")),
        ("undated-new.xml", undated("undated-new")),
        ("tls-old.json", tls("tls-old", CUTOFF - SECOND)),
        ("tls-at.json", tls("tls-at", CUTOFF)),
        ("tls-new.json", tls("tls-new", NOW - timedelta(days=1))),
        ("ruf-old.eml", ruf(1, CUTOFF - timedelta(days=1))),
        ("ruf-at.eml", ruf(2, CUTOFF)),
        ("ruf-undated-old.eml", ruf(3, None)),
        ("ruf-undated-new.eml", ruf(4, None)),
        ("junk-old.xml", b'<?xml version="1.0"?><feedback><report_metadata>one'),
        ("junk-new.xml", b'<?xml version="1.0"?><feedback><report_metadata>two'),
        refused=2,
    )
    undated_old = pk_of(engine, dmarc_reports, "report_id", "undated-old")
    age(engine, dmarc_reports, undated_old, CUTOFF - SECOND)
    ruf_undated = pk_of(engine, failure_reports, "source_ip", "203.0.113.3")
    age(engine, failure_reports, ruf_undated, CUTOFF - SECOND)
    junk_old = pk_of(engine, quarantine, "source", "junk-old.xml")
    age(engine, quarantine, junk_old, CUTOFF - SECOND)
    age(engine, quarantine, pk_of(engine, quarantine, "source", "junk-new.xml"), CUTOFF)
    # Every other table gets a row dated long before the cutoff: alert state, reputation, DNS
    # answers are not reports, and stay. (A future table whose constraints refuse a generic
    # row is left empty here; alert_state must take one.)
    owned = {t.name for t, _ in OWNED}
    for table in metadata.sorted_tables:
        if table.name not in owned:
            try:
                with engine.begin() as conn:
                    conn.execute(table.insert().values(filler(table, CUTOFF - timedelta(days=99))))
            except (IntegrityError, DataError):
                assert table is not alert_state
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE operator_notes (id INTEGER PRIMARY KEY, note TEXT)"))
        conn.execute(text("INSERT INTO operator_notes VALUES (1, 'keep'), (2, 'me')"))

    gone = {
        "dmarc_reports": {
            pk_of(engine, dmarc_reports, "report_id", r) for r in ("old-1", "old-2", "edge-out")
        }
        | {undated_old},
        "tls_reports": {pk_of(engine, tls_reports, "report_id", "tls-old")},
        "failure_reports": {
            pk_of(engine, failure_reports, "source_ip", "203.0.113.1"),
            ruf_undated,
        },
        "quarantine": {junk_old},
    }
    before = snapshot(engine)
    assert before["alert_state"]
    assert before["operator_notes"]
    # --offline: the summary must not write DNS answers into the snapshot compared below
    window = ["--since", CUTOFF.isoformat(), "--until", NOW.isoformat(), "--json", "--offline"]
    summary_before = run(["--db", db_url, "dmarc", "summary", *window]).stdout

    dry = run(["--db", db_url, "dmarc", "prune", "--older-than", "400d", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert snapshot(engine) == before
    expected = {
        "dmarc_reports": 4,
        "dmarc_records": 3 + 5 + 3 + 3,
        "dmarc_auth_results": 2 * (3 + 5 + 3 + 3),
        "tls_reports": 1,
        "tls_policies": 1,
        "tls_failures": 2,
        "failure_reports": 2,
        "quarantine": 1,
    }
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] is True
    assert planned["counts"] == expected
    assert planned["cutoff"] == CUTOFF.strftime("%Y-%m-%dT%H:%M:%SZ")

    real = run(["--db", db_url, "dmarc", "prune", "--older-than", "400d", "--json"])
    assert real.exit_code == 0, real.output
    done = json.loads(real.stdout)
    assert done["dry_run"] is False
    assert done["counts"] == expected
    assert snapshot(engine) == without(before, gone)
    assert orphans(engine) == (0, 0)
    # A window starting at the cutoff reads the same as before: prune and views agree.
    assert run(["--db", db_url, "dmarc", "summary", *window]).stdout == summary_before

    again = run(["--db", db_url, "dmarc", "prune", "--older-than", "400d", "--json"])
    assert json.loads(again.stdout)["counts"] == dict.fromkeys(expected, 0)


def refuse_deletes(engine: Engine, table: str, when: str) -> None:
    """Fail operationally (as a full disk or an I/O error would) when a matching row of
    ``table`` is deleted: PostgreSQL raises SQLSTATE 53100; SQLite hits a runtime error
    (malformed JSON, an OperationalError like a disk I/O error) only for that row."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_delete() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'could not write: No space left on device' "
                    "USING ERRCODE = 'disk_full'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse_delete BEFORE DELETE ON {table} FOR EACH ROW "
                    f"WHEN ({when}) EXECUTE FUNCTION refuse_delete()"
                )
            )
        else:
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse_delete BEFORE DELETE ON {table} WHEN {when} "
                    "BEGIN SELECT json('disk I/O error'); END"
                )
            )


def allow_deletes(engine: Engine, table: str) -> None:
    with engine.begin() as conn:
        pg = engine.dialect.name == "postgresql"
        conn.execute(text(f"DROP TRIGGER refuse_delete{' ON ' + table if pg else ''}"))


def test_an_interrupted_prune_leaves_whole_reports_and_a_rerun_finishes(
    engine: Engine, db_url: str
) -> None:
    """The failure hits the second batch after its records and auth results were deleted in
    the same transaction: the first batch is gone whole, the second is back whole."""
    ingest(
        engine,
        *[
            (f"old-{n}.xml", aggregate(f"old-{n}", CUTOFF - timedelta(days=n), records=n))
            for n in range(1, 7)
        ],
        ("new-1.xml", aggregate("new-1", NOW - timedelta(days=1), records=2)),
        ("new-2.xml", aggregate("new-2", NOW, records=3)),
    )
    stored = per_report(engine)
    old = sorted(pk_of(engine, dmarc_reports, "report_id", f"old-{n}") for n in range(1, 7))
    new = set(stored) - set(old)
    # Batches of two, taken in id order: the fourth old report is in the second batch, and
    # the reports row is the last thing a batch deletes.
    refuse_deletes(engine, "dmarc_reports", f"OLD.id = {old[3]}")

    with pytest.raises(pruning.PruneStopped) as stopped:
        pruning.prune(engine, 400, CUTOFF, batch_reports=2, pause=0)
    assert stopped.value.counts["dmarc_reports"] == 2
    assert "rerun to finish" in str(stopped.value)
    left = per_report(engine)
    assert set(left) == set(old[2:]) | new
    assert all(left[pk] == stored[pk] for pk in left)  # nothing half-deleted
    assert orphans(engine) == (0, 0)

    # Through the CLI: one line, exit 1, and under --json the counts so far.
    failed = run(["--db", db_url, "dmarc", "prune", "--older-than", "400d", "--json"])
    assert failed.exit_code == 1
    assert failed.stderr.startswith("Error: prune stopped by a database error")
    assert len(failed.stderr.strip().splitlines()) == 1
    assert json.loads(failed.stdout)["counts"]["dmarc_reports"] == 0  # one batch, rolled back
    assert per_report(engine) == left

    allow_deletes(engine, "dmarc_reports")
    rerun = run(["--db", db_url, "dmarc", "prune", "--older-than", "400d", "--json"])
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["counts"]["dmarc_reports"] == 4
    assert per_report(engine) == {pk: stored[pk] for pk in new}
    assert orphans(engine) == (0, 0)


def test_batches_are_bounded_by_reports_and_by_records(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    ingest(
        engine,
        *[
            (f"old-{n}.xml", aggregate(f"old-{n}", CUTOFF - timedelta(days=n), records=3))
            for n in range(1, 6)
        ],
    )
    caplog.set_level("INFO", logger="inboxops.dmarc.prune")
    result = pruning.prune(engine, 400, CUTOFF, batch_reports=2, batch_records=5, pause=0)
    sizes = [int(m) for m in re.findall(r"kind=aggregate rows=(\d+)", caplog.text)]
    assert sizes == [1, 1, 1, 1, 1]  # 3 + 3 records would pass 5: one report per batch
    assert result.counts["dmarc_reports"] == 5

    ingest(
        engine,
        *[
            (f"again-{n}.xml", aggregate(f"again-{n}", CUTOFF - timedelta(days=n), records=3))
            for n in range(1, 6)
        ],
    )
    caplog.clear()
    result = pruning.prune(engine, 400, CUTOFF, batch_reports=2, pause=0)
    assert [int(m) for m in re.findall(r"kind=aggregate rows=(\d+)", caplog.text)] == [2, 2, 1]
    assert result.batches == 3


@pytest.mark.parametrize(
    ("candidates", "cap", "ids"),
    [
        ([(1, 3), (2, 3), (3, 3)], 6, [1, 2]),
        ([(1, 3), (2, 3), (3, 3)], 5, [1]),
        ([(1, 90), (2, 1)], 5, [1]),  # a report bigger than the cap still goes, alone and whole
        ([], 5, []),
    ],
)
def test_take_batch(candidates: list[tuple[int, int]], cap: int, ids: list[int]) -> None:
    assert pruning.take_batch(candidates, cap) == ids


@pytest.mark.parametrize(
    ("text_", "days"), [("400d", 400), ("12w", 84), ("1D", 1), (" 7d ", 7), ("36600d", 36600)]
)
def test_ages_accepted(text_: str, days: int) -> None:
    assert parse_age(text_) == days


@pytest.mark.parametrize("text_", ["18m", "400", "0d", "1y", "-5d", "d", "36601d", "4 00d"])
def test_ages_refused(text_: str) -> None:
    with pytest.raises(ValueError, match="days"):
        parse_age(text_)


def test_retention_comes_from_the_flag_then_the_config_else_exit_2(
    tmp_path: Path, sqlite_url: str
) -> None:
    missing = run(["--db", sqlite_url, "dmarc", "prune", "--dry-run", "--json"])
    assert missing.exit_code == 2
    assert "nothing to prune by: give --older-than" in missing.stderr
    assert "retention_days" in missing.stderr

    cfg = tmp_path / "inboxops.toml"
    cfg.write_text("[dmarc]\nretention_days = 0\n")
    args = ["--db", sqlite_url, "--config", str(cfg), "dmarc", "prune", "--dry-run", "--json"]
    assert run(args).exit_code == 2  # 0 keeps reports forever

    open_database(sqlite_url).dispose()
    cfg.write_text("[dmarc]\nretention_days = 400\n")
    result = run(args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["older_than_days"] == 400
    result = run([*args, "--older-than", "12w"])
    assert json.loads(result.stdout)["older_than_days"] == 84

    bad = run([*args, "--older-than", "18m"])
    assert bad.exit_code == 2
    assert "540d" in bad.stderr
    cfg.write_text("[dmarc]\nretention_days = -1\n")
    assert run(args).exit_code == 2


def test_prune_never_creates_a_database(tmp_path: Path) -> None:
    target = tmp_path / "none.db"
    result = run(["--db", f"sqlite:///{target}", "dmarc", "prune", "--older-than", "400d"])
    assert result.exit_code == 1
    assert "no inboxops database" in result.stderr
    assert not target.exists()


def test_prune_prints_a_table(engine: Engine, db_url: str) -> None:
    ingest(engine, ("old.xml", aggregate("old", CUTOFF - SECOND, records=2)))
    result = run(["--db", db_url, "dmarc", "prune", "--older-than", "400d", "--dry-run"])
    assert result.exit_code == 0
    assert "would delete 1 aggregate, 0 TLS and 0 failure report(s)" in result.stdout
    assert re.search(r"dmarc_auth_results\s+4\b", result.stdout)


# -- export -----------------------------------------------------------------------------------

HOSTILE_ORG = '=HYPERLINK("http://evil.example","open me")\nsecond line'


def test_export_csv_is_flat_and_safe_in_a_spreadsheet(engine: Engine, db_url: str) -> None:
    ingest(
        engine,
        (
            "hostile.xml",
            aggregate_xml(
                org=HOSTILE_ORG,
                report_id="-2+3",
                domain="@evil.example",
                begin=NOW - timedelta(days=2),
                end=NOW - timedelta(days=1),
                rows=[("192.0.2.10", 7, True), ("198.51.100.5", 2, False)],
            ),
        ),
    )
    result = run(["--db", db_url, "dmarc", "export", "--days", "7"])
    assert result.exit_code == 0, result.output
    raw = result.stdout_bytes.decode()  # .stdout would turn CRLF into LF
    assert raw.count("\r\n") == 3  # header + 2 rows; the newline inside a cell is quoted
    header, *rows = list(csv.reader(io.StringIO(raw, newline="")))
    assert tuple(header) == COLUMNS
    assert len(rows) == 2
    first = dict(zip(COLUMNS, rows[0], strict=True))
    assert first["org_name"] == "'" + HOSTILE_ORG
    assert first["report_id"] == "'-2+3"
    assert first["header_from"] == "'@evil.example"
    assert first["dkim_domains"] == "'@evil.example"
    assert (first["source_ip"], first["count"], first["dmarc_pass"]) == ("192.0.2.10", "7", "true")
    assert (first["dkim_results"], first["spf_results"]) == ("pass", "pass")
    assert first["begin"] == (NOW - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    second = dict(zip(COLUMNS, rows[1], strict=True))
    assert (second["dmarc_pass"], second["dkim_domains"]) == ("false", "other.example")
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (5, "5"),
        (["a", None, "b"], "a;;b"),
        (["=x", "y"], "'=x;y"),
    ],
)
def test_csv_cell(value: Any, cell: str) -> None:
    assert csv_cell(value) == cell


def _jsonl(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_export_window_and_domain_read_like_summary(engine: Engine, db_url: str) -> None:
    """A daily report counts on its own day only; --domain includes subdomains; the sums
    match `dmarc summary` over the same flags."""
    day = datetime(2026, 11, 20, tzinfo=UTC)
    nxt = day + timedelta(days=1)

    def daily(report_id: str, begin: datetime, domain: str, n: int) -> tuple[str, bytes]:
        rows = [(f"192.0.2.{i + 1}", 10 * (i + 1), True) for i in range(n)]
        xml = aggregate_xml(
            report_id=report_id,
            domain=domain,
            begin=begin,
            end=begin + timedelta(days=1),
            rows=rows,
        )
        return f"{report_id}.xml", xml

    ingest(
        engine,
        daily("a", day, "example.com", 2),
        daily("b", nxt, "example.com", 3),
        daily("c", nxt, "other.example", 1),
        daily("d", nxt, "mail.example.com", 1),
    )
    for flags, ids in [
        (["--since", "2026-11-20", "--until", "2026-11-20"], {"a"}),
        (["--since", "2026-11-21", "--until", "2026-11-21"], {"b", "c", "d"}),
        (["--since", "2026-11-21", "--until", "2026-11-21", "--domain", "example.com"], {"b", "d"}),
        (["--days", "7"], {"a", "b", "c", "d"}),
    ]:
        rows = _jsonl(run(["--db", db_url, "dmarc", "export", "--format", "jsonl", *flags]))
        assert {r["report_id"] for r in rows} == ids, flags
        assert all(tuple(r) == COLUMNS for r in rows)
        summary = run(["--db", db_url, "dmarc", "summary", "--json", *flags])
        messages = sum(s["messages"] for s in json.loads(summary.stdout))
        assert sum(r["count"] for r in rows) == messages, flags
    rows = _jsonl(run(["--db", db_url, "dmarc", "export", "--format", "jsonl", "--days", "3"]))
    [d] = [r for r in rows if r["report_id"] == "d"]
    assert d["dkim_domains"] == ["mail.example.com"]
    assert d["spf_scopes"] == ["mfrom"]
    assert d["envelope_from"] is None


def test_export_to_a_file_appears_whole(engine: Engine, db_url: str, tmp_path: Path) -> None:
    ingest(engine, ("r.xml", aggregate("r", NOW - timedelta(days=1), records=4)))
    target = tmp_path / "out" / "dmarc.csv"
    missing_dir = run(["--db", db_url, "dmarc", "export", "--output", str(target)])
    assert missing_dir.exit_code == 2
    target.parent.mkdir()
    target.write_text("stale\n")
    result = run(["--db", db_url, "dmarc", "export", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("exported 4 record(s)")
    assert len(target.read_text().splitlines()) == 5
    assert [p.name for p in target.parent.iterdir()] == ["dmarc.csv"]

    def interrupted() -> None:
        with replacing(target) as out:
            out.write("half a file")
            raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        interrupted()
    assert len(target.read_text().splitlines()) == 5  # the complete export is still there
    assert [p.name for p in target.parent.iterdir()] == ["dmarc.csv"]


def test_export_of_an_empty_window_says_what_the_database_holds(
    engine: Engine, db_url: str
) -> None:
    ingest(engine, ("r.xml", aggregate("r", datetime(2024, 3, 6, 12, tzinfo=UTC))))
    result = run(["--db", db_url, "dmarc", "export", "--days", "7"])
    assert result.exit_code == 0
    assert result.stdout_bytes.decode() == ",".join(COLUMNS) + "\r\n"
    assert "try --since 2024-03-06" in result.stderr


# -- export: memory stays flat ----------------------------------------------------------------

RECORDS_PER_REPORT = 5000
REPORTS = 12  # 60,000 records, 120,000 joined rows: ~10 MB of CSV


# Runs the CLI and reports the process's own peak resident memory on exit. VmHWM belongs to
# the process image after exec; ru_maxrss from wait4 would include the forking pytest process.
_MEASURED = (
    "import atexit, sys\n"
    "from inboxops.cli import main\n"
    "def peak():\n"
    "    with open('/proc/self/status') as status:\n"
    "        kib = [line.split()[1] for line in status if line.startswith('VmHWM:')][0]\n"
    "    sys.stderr.write(f'peak-kib={kib}\\n')\n"
    "atexit.register(peak)\n"
    "sys.argv[0] = 'inboxops'\n"
    "main()\n"
)


def _peak_rss_mib(args: list[str]) -> float:
    """Peak resident memory of one process running ``inboxops args``: all of it, Python
    objects, the driver's result buffers and SQLite's cache alike."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    [kib] = re.findall(r"peak-kib=(\d+)", done.stderr)
    return int(kib) / 1024


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_export_memory_stays_flat(engine: Engine, db_url: str, tmp_path: Path) -> None:
    """Exporting 60,000 records costs the process no more memory than exporting none:
    rows stream from a server-side cursor (PostgreSQL) or SQLite's stepping cursor. Held in
    memory at once, they would take well over 50 MiB (the driver's result buffer, or the
    rows as Python objects); the bound below is a fraction of that."""
    base = datetime(2026, 11, 1, tzinfo=UTC)
    ingest(
        engine,
        *[
            (
                f"big-{n}.xml",
                aggregate(f"big-{n}", base + timedelta(days=n), records=RECORDS_PER_REPORT),
            )
            for n in range(REPORTS)
        ],
    )
    out = tmp_path / "all.csv"
    common = ["--db", db_url, "dmarc", "export", "--output"]
    none = [str(tmp_path / "none.csv"), "--since", "2020-01-01", "--until", "2020-01-02"]
    empty = _peak_rss_mib([*common, *none])
    full = _peak_rss_mib([*common, str(out), "--since", "2026-10-01", "--until", "2026-12-01"])
    exported = out.stat().st_size / 2**20
    assert len(out.read_bytes().splitlines()) == REPORTS * RECORDS_PER_REPORT + 1
    assert exported > 8
    assert full - empty < 12, (empty, full, exported)
