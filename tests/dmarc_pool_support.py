"""What the tests of parallel DMARC imports share: a snapshot of every DMARC table, the
import they run, and a directory of every kind of input (dmarc/pool.py, dmarc/streamed.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from inboxops.config import Limits
from inboxops.dmarc.ingest import Ingestor, IngestStats
from inboxops.dmarc.store import DatabaseSink
from inboxops.storage.db import open_database
from inboxops.storage.models import (
    dmarc_auth_results,
    dmarc_records,
    dmarc_reports,
    failure_reports,
    quarantine,
    tls_policies,
    tls_reports,
)
from tests.helpers import aggregate_xml, write_report
from tests.hostile_support import zip_members

# -- what a run leaves behind -----------------------------------------------------------------


def _plain(value: Any) -> Any:
    """One value as both databases and both runs can be compared: UTC instants without zone."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).replace(tzinfo=None)
    return value


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every DMARC table's rows, sorted, without surrogate ids or storage times (child rows
    name their report by key, not by id)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        keys = dict(conn.execute(select(dmarc_reports.c.id, dmarc_reports.c.report_key)).all())
        tls_keys = dict(conn.execute(select(tls_reports.c.id, tls_reports.c.report_key)).all())
        for table, parents in (
            (dmarc_reports, None),
            (dmarc_records, keys),
            (dmarc_auth_results, keys),
            (quarantine, None),
            (tls_reports, None),
            (tls_policies, tls_keys),
            (failure_reports, None),
        ):
            names = [c.name for c in table.columns if c.name not in ("id", "stored_at")]
            rows = []
            for row in conn.execute(select(*(table.c[n] for n in names))):
                values = dict(zip(names, row, strict=True))
                if parents is not None:
                    values["report_pk"] = parents[values["report_pk"]]
                rows.append(tuple(repr(_plain(values[n])) for n in names))
            out[table.name] = sorted(rows)
    return out


def run(engine: Engine, paths: list[Path], workers: int) -> IngestStats:
    return Ingestor(DatabaseSink(engine), Limits()).ingest_paths(paths, workers=workers)


def sequential(tmp_path: Path, paths: list[Path]) -> tuple[IngestStats, dict[str, Any]]:
    """The same import by one process, into a fresh SQLite database: the reference."""
    engine = open_database(f"sqlite:///{tmp_path / 'sequential.db'}")
    try:
        return run(engine, paths, workers=1), snapshot(engine)
    finally:
        engine.dispose()


def relative(stats: IngestStats) -> dict[str, Any]:
    return stats.as_json()


# -- inputs -------------------------------------------------------------------------------------


def mixed_inputs(directory: Path) -> list[Path]:
    """More files than a chunk, of every kind the sequential path treats specially."""
    day = datetime(2026, 11, 22, tzinfo=UTC)
    for i in range(40):
        rows = [(f"192.0.2.{i % 250 + 1}", i + 1, i % 3 != 0), (f"198.51.100.{i + 1}", 2, False)]
        write_report(
            directory,
            f"r{i:03}.xml",
            aggregate_xml(org=f"org{i % 7}.example", report_id=f"id{i}", rows=rows),
        )
    # the same report under another name: known; a different one under its key: conflicting
    write_report(directory, "r000-copy.xml", (directory / "r000.xml").read_bytes())
    # the same records in other bytes: known by content, compared with a copy in the same group
    spaced = (directory / "r002.xml").read_bytes().replace(b"<record>", b"\n  <record>")
    write_report(directory, "r002-spaced.xml", spaced)
    write_report(
        directory,
        "r001-other.xml",
        aggregate_xml(org="org1.example", report_id="id1", rows=[("203.0.113.9", 5, True)]),
    )
    big = [(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 1, i % 2 == 0) for i in range(5_200)]
    write_report(directory, "large.xml", aggregate_xml(org="big.example", report_id="L", rows=big))
    two = {
        "a.xml": aggregate_xml(org="zip.example", report_id="z1"),
        "b.xml": aggregate_xml(org="zip.example", report_id="z2", begin=day, end=day),
    }
    write_report(directory, "two.zip", zip_members(two))
    tls = (
        b'{"organization-name":"tls.example","date-range":{"start-datetime":'
        b'"2026-11-22T00:00:00Z","end-datetime":"2026-11-22T23:59:59Z"},'
        b'"contact-info":"tls@tls.example","report-id":"t1","policies":[{"policy":{'
        b'"policy-type":"sts","policy-string":[],"policy-domain":"example.com"},'
        b'"summary":{"total-successful-session-count":5,"total-failure-session-count":0}}]}'
    )
    mixed = {"report.xml": aggregate_xml(org="mix.example", report_id="m1"), "tls.json": tls}
    write_report(directory, "mixed.zip", zip_members(mixed))
    write_report(
        directory,
        "refused.xml",
        aggregate_xml(org="no.example", report_id="bad", rows=[("203.0.113.66", 1, True)]),
    )
    write_report(directory, "broken.xml", b"<?xml version='1.0'?><feedback><report_metadata>")
    write_report(directory, "empty.xml", b"")
    write_report(directory, "README.txt", b"not a report\n")
    return sorted(directory.iterdir())
