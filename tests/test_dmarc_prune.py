"""`inboxops dmarc prune` on both databases.

Data goes in through the real import path (``Ingestor`` over ``DatabaseSink``); the commands
are driven through the CLI where an operator meets them. What prune must never do is checked
by comparing every row of every table (an unrelated one included) before and after.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, func, select, text, update
from sqlalchemy.exc import DataError, IntegrityError

from inboxops.dmarc import prune as pruning
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
from tests.dmarc_data import HALF_DAY, aggregate, ingest, run
from tests.helpers import NOW, allow_operations, refuse_operationally

CUTOFF = NOW - timedelta(days=400)  # what `--older-than 400d` means at NOW
SECOND = timedelta(seconds=1)


# -- building data through the import path ------------------------------------------------------


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
        records, auth = (
            int(
                conn.execute(
                    select(func.count()).select_from(t).where(t.c.report_pk.not_in(reports))
                ).scalar_one()
            )
            for t in (dmarc_records, dmarc_auth_results)
        )
    return records, auth


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
    refuse_operationally(engine, "dmarc_reports", f"OLD.id = {old[3]}", on="DELETE")

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

    allow_operations(engine, "dmarc_reports", on="DELETE")
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
