"""Many files parsed by worker processes store exactly what one process stores (dmarc/pool.py).

The parallel import is only worth having if nobody can tell it from the sequential one: the same
rows, the same counts, the same refusals and quarantine, whatever the mix of inputs (the real
corpus, a large streamed report, archives holding several reports or a TLS report beside one,
a report the database refuses) and even when a worker is killed mid-run.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from inboxops.config import Limits
from inboxops.dmarc import pool
from inboxops.dmarc.dryrun import DryRunSink
from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.store import DatabaseSink
from inboxops.storage.db import open_database
from tests.dmarc_pool_support import mixed_inputs, relative, run, sequential, snapshot
from tests.helpers import aggregate_xml, refuse_values, write_report

# -- tests ----------------------------------------------------------------------------------------


def test_the_corpus_through_workers_is_stored_as_by_one_process(
    engine: Engine, corpus: Path, tmp_path: Path
) -> None:
    """Refusals, known and replaced copies, TLS and failure reports, not-reports: all alike."""
    stats = run(engine, [corpus], workers=2)
    reference, rows = sequential(tmp_path, [corpus])
    assert (stats.reports_new, stats.reports_replaced) == (20, 1)
    assert relative(stats) == relative(reference)
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
    assert relative(stats) == relative(reference)
    assert snapshot(engine) == rows
    refused = {Path(f.source).name for f in stats.failed}
    assert refused == {"refused.xml", "broken.xml", "empty.xml"}
    assert stats.quarantined == 3
    assert (stats.reports_known, stats.reports_conflicting, stats.not_reports) == (2, 1, 1)
    assert stats.tls_reports_new == 1
    assert stats.reports_new == 40 + 1 + 2 + 1  # the 40, large, two.zip's pair, mixed.zip's


def test_a_dry_run_through_workers_says_what_one_process_says(tmp_path: Path) -> None:
    paths = mixed_inputs(tmp_path / "in")
    sinks = [DryRunSink(), DryRunSink()]
    stats = [
        Ingestor(s, Limits()).ingest_paths(paths, workers=n)
        for s, n in zip(sinks, (2, 1), strict=True)
    ]
    assert relative(stats[0]) == relative(stats[1])
    assert sinks[0].reports == sinks[1].reports
    assert len(sinks[0].reports) == 40 + 3 + 1 + 2 + 1 + 1  # + copies, conflicting, refused


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


def test_a_copy_in_other_bytes_within_one_group_is_known_by_its_content(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A group's report rows go in together, its records at its end; a second copy of a
    report in the same group is still compared with the first one's records, not with
    nothing, and without falling back to writing the group report by report."""
    caplog.set_level(logging.INFO, logger="inboxops.dmarc.store")
    first = aggregate_xml(report_id="twice", rows=[("192.0.2.1", 3, True), ("192.0.2.2", 1, False)])
    paths = [
        write_report(tmp_path, "a.xml", first),
        write_report(tmp_path, "b.xml", first.replace(b"<record>", b"\n <record>")),
        write_report(tmp_path, "c.xml", aggregate_xml(report_id="other")),
    ]
    stats = run(engine, paths, workers=1)
    assert (stats.reports_new, stats.reports_known, stats.reports_conflicting) == (2, 1, 0)
    assert stats.records == 3
    assert "report_group_rewritten" not in caplog.text


def test_the_workers_run_ahead_by_a_bounded_amount_of_input(tmp_path: Path) -> None:
    """Parsed reports wait in memory until the writer takes them: what is out is capped in
    bytes of input (a chunk at least), whatever the number of files."""
    paths = [
        write_report(tmp_path, f"{i:03}.xml", aggregate_xml(report_id=f"b{i}"))
        for i in range(pool.CHUNK * 12)
    ]
    chunk_bytes = max(
        sum(p.stat().st_size for p in paths[i : i + pool.CHUNK])
        for i in range(0, len(paths), pool.CHUNK)
    )
    parsing = pool.Parsing(paths, Limits(), workers=2)
    parsing.ahead_bytes = 3 * chunk_bytes
    seen = []
    with parsing:
        seen.append(parsing.in_flight)
        answers = []
        for path, reports in parsing:
            seen.append(parsing.in_flight)
            answers.append((path, reports))
    assert [p for p, _ in answers] == paths
    assert all(reports is not None and len(reports) == 1 for _, reports in answers)
    assert max(seen) > 2 * chunk_bytes  # it does run ahead...
    assert max(seen) <= parsing.ahead_bytes + chunk_bytes  # ...by at most the cap and a chunk
    assert seen[-1] == 0


def test_a_cap_smaller_than_one_chunk_still_sends_one_chunk_at_a_time(tmp_path: Path) -> None:
    paths = [
        write_report(tmp_path, f"{i:03}.xml", aggregate_xml(report_id=f"c{i}"))
        for i in range(pool.MIN_FILES)
    ]
    parsing = pool.Parsing(paths, Limits(), workers=2)
    parsing.ahead_bytes = 0
    with parsing:
        answers = list(parsing)
    assert [p for p, _ in answers] == paths
    assert all(reports is not None for _, reports in answers)
