"""Many files parsed by worker processes store exactly what one process stores (dmarc/pool.py).

The parallel import is only worth having if nobody can tell it from the sequential one: the same
rows, the same counts, the same refusals and quarantine, whatever the mix of inputs (the real
corpus, a large streamed report, archives holding several reports or a TLS report beside one,
a report the database refuses) and even when a worker is killed mid-run.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from inboxops.config import Limits
from inboxops.dmarc import pool
from inboxops.dmarc.dryrun import DryRunSink
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
from tests.helpers import aggregate_xml, refuse_values, write_report
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


def _relative(stats: IngestStats) -> dict[str, Any]:
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


# -- tests ----------------------------------------------------------------------------------------


def test_the_corpus_through_workers_is_stored_as_by_one_process(
    engine: Engine, corpus: Path, tmp_path: Path
) -> None:
    """Refusals, known and replaced copies, TLS and failure reports, not-reports: all alike."""
    stats = run(engine, [corpus], workers=2)
    reference, rows = sequential(tmp_path, [corpus])
    assert (stats.reports_new, stats.reports_replaced) == (20, 1)
    assert _relative(stats) == _relative(reference)
    assert snapshot(engine) == rows


def test_every_kind_of_input_through_workers_is_stored_as_by_one_process(
    engine: Engine, tmp_path: Path
) -> None:
    """A large report (streamed), archives of two reports and of a report beside a TLS report,
    a duplicate, a conflicting copy, a report the database refuses, broken and empty files."""
    paths = mixed_inputs(tmp_path / "in")
    refuse_values(engine, "dmarc_records", "source_ip", "203.0.113.66")
    reference_engine = open_database(f"sqlite:///{tmp_path / 'sequential.db'}")
    refuse_values(reference_engine, "dmarc_records", "source_ip", "203.0.113.66")
    try:
        reference = run(reference_engine, paths, workers=1)
        rows = snapshot(reference_engine)
    finally:
        reference_engine.dispose()
    stats = run(engine, paths, workers=2)
    assert _relative(stats) == _relative(reference)
    assert snapshot(engine) == rows
    refused = {Path(f.source).name for f in stats.failed}
    assert refused == {"refused.xml", "broken.xml", "empty.xml"}
    assert stats.quarantined == 3
    assert (stats.reports_known, stats.reports_conflicting, stats.not_reports) == (1, 1, 1)
    assert stats.tls_reports_new == 1
    assert stats.reports_new == 40 + 1 + 2 + 1  # the 40, large, two.zip's pair, mixed.zip's


def test_a_dry_run_through_workers_says_what_one_process_says(tmp_path: Path) -> None:
    paths = mixed_inputs(tmp_path / "in")
    sinks = [DryRunSink(), DryRunSink()]
    stats = [
        Ingestor(s, Limits()).ingest_paths(paths, workers=n)
        for s, n in zip(sinks, (2, 1), strict=True)
    ]
    assert _relative(stats[0]) == _relative(stats[1])
    assert sinks[0].reports == sinks[1].reports
    assert len(sinks[0].reports) == 40 + 2 + 1 + 2 + 1 + 1  # + copy, conflicting, refused


def test_a_worker_killed_mid_run_leaves_the_rest_to_the_parent(tmp_path: Path) -> None:
    """The OOM killer takes a worker: every file is still answered, in order, and the files
    the broken pool never answered come back for the parent to read."""
    small = [p for p in mixed_inputs(tmp_path / "in") if p.name != "large.xml"]
    paths = small * (pool.CHUNK * pool.AHEAD // len(small) + 2)  # more than the window holds
    with pool.Parsing(paths, Limits(), workers=2) as parsing:
        answers = iter(parsing)
        first = next(answers)
        for child in mp.active_children():
            os.kill(child.pid or 0, signal.SIGKILL)
        rest = list(answers)
    got = [first, *rest]
    assert [path for path, _ in got] == paths
    assert any(reports is not None for _, reports in got[: pool.CHUNK])  # before the kill
    # reports a worker would have parsed, left to the parent
    assert any(reports is None and path.name.startswith("r0") for path, reports in rest)
    assert all(reports is None for _, reports in got[pool.CHUNK * (pool.AHEAD + 1) :])


def test_an_import_of_many_files_uses_the_workers_and_a_small_one_does_not(
    engine: Engine, tmp_path: Path
) -> None:
    """``workers`` left to the default: processes only where there are enough files."""
    children: list[int] = []

    def progress(done: int, total: int) -> None:
        children.append(len(mp.active_children()))

    many = [
        write_report(tmp_path / "many", f"{i}.xml", aggregate_xml(report_id=f"m{i}"))
        for i in range(pool.MIN_FILES)
    ]
    Ingestor(DatabaseSink(engine), Limits()).ingest_paths(many, progress=progress)
    assert max(children) == min(os.cpu_count() or 1, 4) > 1
    children.clear()
    few = many[: pool.MIN_FILES - 1]
    stats = Ingestor(DatabaseSink(engine), Limits()).ingest_paths(few, progress=progress)
    assert max(children) == 0
    assert stats.reports_known == pool.MIN_FILES - 1


@pytest.mark.parametrize("files", [0, 1, pool.MIN_FILES - 1])
def test_small_imports_stay_in_one_process(files: int) -> None:
    assert pool.workers_for(files) == 1
