"""A big report parsed by its own worker while the main process writes (dmarc/streamed.py).

The store reads the worker's stream as it reads a local parser, so what matters is that nobody
can tell the two apart: the same rows and counts for big plain and gzipped reports, reports
with dropped records or repaired XML, copies of a stored report; the same refusal, at the same
point, for a truncated archive, an entity bomb or XML that is no report; and the same records
when the worker is killed before or in the middle of its stream.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing as mp
import os
import signal
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import Engine

from inboxops.cli import root
from inboxops.config import Limits
from inboxops.dmarc import pool
from inboxops.dmarc.dryrun import DryRunSink
from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.parse import AggregateParser
from inboxops.dmarc.store import DatabaseSink
from inboxops.dmarc.streamed import Streaming
from inboxops.errors import HostileInputError, ParseError
from inboxops.storage.db import open_database
from tests.dmarc_pool_support import relative, snapshot
from tests.helpers import aggregate_xml, write_report
from tests.hostile_support import zip_members

BIG = 64_000  # bytes of plain XML that get a worker of their own in these tests


def rows(n: int, *, bad_every: int = 0) -> list[tuple[str, int, bool]]:
    """``n`` records; every ``bad_every``-th has a source that is no IP (dropped)."""
    return [
        (
            "mail.example.net"
            if bad_every and i % bad_every == 0
            else f"10.{i // 256 % 256}.{i % 256}.7",
            i % 9 + 1,
            i % 3 != 0,
        )
        for i in range(1, n + 1)
    ]


def big_inputs(directory: Path) -> list[Path]:
    """Big files of every kind the stream must treat as the local parser does, and small ones."""
    large = aggregate_xml(org="big.example", report_id="L", rows=rows(6_000, bad_every=97))
    write_report(directory, "large.xml", large)
    write_report(directory, "large-again.xml", large)  # the same report: known
    write_report(
        directory,
        "medium.xml.gz",
        gzip.compress(aggregate_xml(org="gz.example", report_id="G", rows=rows(4_000))),
    )
    repaired = aggregate_xml(org="A & B", report_id="R", rows=rows(400))  # bare "&": recovered
    write_report(directory, "repaired.xml", repaired)
    cut = gzip.compress(aggregate_xml(org="cut.example", report_id="C", rows=rows(3_000)))
    write_report(directory, "truncated.xml.gz", cut[: len(cut) * 2 // 3])
    bomb = aggregate_xml(org="bomb.example", report_id="B", rows=rows(400)).replace(
        b"<feedback>",
        b'<!DOCTYPE feedback [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><feedback>',
        1,
    )
    write_report(directory, "bomb.xml", bomb)
    page = b"<html><body>" + b"<p>not a report</p>" * 5_000 + b"</body></html>"
    write_report(directory, "page.xml", page)
    pair = {  # a gzip of a zip: two payloads, of which the worker streams the first only
        "one.xml": aggregate_xml(org="pair.example", report_id="P1", rows=rows(3_000)),
        "two.xml": aggregate_xml(org="pair.example", report_id="P2", rows=rows(2_000)),
    }
    write_report(directory, "pair.zip.gz", gzip.compress(zip_members(pair)))
    for i in range(3):
        write_report(directory, f"small{i}.xml", aggregate_xml(report_id=f"s{i}"))
    return sorted(directory.iterdir())


def test_big_reports_through_their_own_workers_are_stored_as_by_one_process(
    engine: Engine, tmp_path: Path
) -> None:
    paths = big_inputs(tmp_path / "in")
    assert {p.name for p in paths if pool.streamable(p, BIG)} >= {
        "large.xml",
        "large-again.xml",
        "medium.xml.gz",
        "pair.zip.gz",
        "repaired.xml",
        "truncated.xml.gz",
        "bomb.xml",
        "page.xml",
    }
    reference_engine = open_database(f"sqlite:///{tmp_path / 'sequential.db'}")
    try:
        reference = Ingestor(DatabaseSink(reference_engine), Limits()).ingest_paths(
            paths, workers=1
        )
        expected = snapshot(reference_engine)
    finally:
        reference_engine.dispose()
    ingestor = Ingestor(DatabaseSink(engine), Limits())
    with pool.Parsing(paths, Limits(), workers=2, big=BIG) as parsing:
        stats = ingestor.ingest_parsed(parsing)
    assert relative(stats) == relative(reference)
    assert snapshot(engine) == expected
    refused = {Path(f.source).name: f.reason for f in stats.failed}
    assert set(refused) == {"truncated.xml.gz", "bomb.xml", "page.xml"}
    assert "DOCTYPE" in refused["bomb.xml"]
    assert (stats.reports_new, stats.reports_known) == (8, 1)
    assert stats.records_dropped == 6_000 // 97


def test_a_dry_run_of_big_reports_says_what_one_process_says(tmp_path: Path) -> None:
    paths = big_inputs(tmp_path / "in")
    sinks = [DryRunSink(), DryRunSink()]
    with pool.Parsing(paths, Limits(), workers=2, big=BIG) as parsing:
        streamed = Ingestor(sinks[0], Limits()).ingest_parsed(parsing)
    local = Ingestor(sinks[1], Limits()).ingest_paths(paths, workers=1)
    assert relative(streamed) == relative(local)
    assert sinks[0].reports == sinks[1].reports


def _local(path: Path) -> tuple[list[object], tuple[object, ...]]:
    with path.open("rb") as fh:
        parser = AggregateParser(fh, source=str(path))
        meta = parser.read_meta()
        values: list[object] = list(parser.values())
        return values, (parser.sha256, parser.dropped, parser.recovered, list(meta.errors))


def _kill_workers() -> None:
    for child in mp.active_children():
        os.kill(child.pid or 0, signal.SIGKILL)


def test_a_stream_whose_worker_is_killed_mid_way_goes_on_locally(tmp_path: Path) -> None:
    """More records than the worker may send ahead: killed after the first batch, the rest
    is parsed again here and the records already given out are skipped, not repeated."""
    path = write_report(
        tmp_path, "huge.xml", aggregate_xml(report_id="H", rows=rows(30_000, bad_every=1_001))
    )
    expected, final = _local(path)
    streaming = Streaming(path, Limits())
    with path.open("rb") as fh:
        parser = streaming.parser(fh, str(path))
        meta = parser.read_meta()  # the object the store holds and writes at the end
        values = parser.values()
        got: list[object] = [next(values)]
        _kill_workers()
        got.extend(values)
        assert parser.read_meta() is meta
        assert (parser.sha256, parser.dropped, parser.recovered, meta.errors) == final
    streaming.stop()
    assert got == expected


def test_a_stream_whose_worker_is_killed_before_a_word_is_parsed_here(tmp_path: Path) -> None:
    path = write_report(tmp_path, "big.xml", aggregate_xml(report_id="K", rows=rows(2_000)))
    expected, final = _local(path)
    streaming = Streaming(path, Limits())
    streaming.start()
    _kill_workers()
    with path.open("rb") as fh:
        parser = streaming.parser(fh, str(path))
        meta = parser.read_meta()
        got = list(parser.values())
        assert (parser.sha256, parser.dropped, parser.recovered, meta.errors) == final
    assert got == expected


def test_a_parse_error_crosses_from_the_worker_whole() -> None:
    """The error a worker met is raised here with its source and reason, not just its text."""
    for error in (
        ParseError("zip archive is empty", source="a.zip", position="line 3"),
        HostileInputError("XML declares a DOCTYPE", source="b.xml"),
    ):
        reader, writer = mp.get_context("fork").Pipe(duplex=False)
        writer.send(("error", error))
        _, crossed = reader.recv()
        assert type(crossed) is type(error)
        assert (crossed.reason, crossed.source, crossed.position, str(crossed)) == (
            error.reason,
            error.source,
            error.position,
            str(error),
        )


def test_the_import_command_streams_a_big_report_and_stores_it_all(
    db_url: str, tmp_path: Path
) -> None:
    """``dmarc import`` as a user runs it: a report over the size that gets its own worker,
    every usable record stored once, the dropped ones counted, a second import known."""
    path = write_report(
        tmp_path / "in", "big.xml", aggregate_xml(report_id="CLI", rows=rows(6_000, bad_every=50))
    )
    assert pool.streamable(path)  # the real threshold, not the tests' smaller one
    first = CliRunner().invoke(root, ["--db", db_url, "dmarc", "import", "--json", str(path)])
    again = CliRunner().invoke(root, ["--db", db_url, "dmarc", "import", "--json", str(path)])
    assert (first.exit_code, again.exit_code) == (0, 0)
    out, second = json.loads(first.stdout), json.loads(again.stdout)
    assert (out["reports_new"], out["records"], out["records_dropped"]) == (1, 5_880, 120)
    assert (second["reports_new"], second["reports_known"]) == (0, 1)
