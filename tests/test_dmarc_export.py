"""`inboxops dmarc export` on both databases: flat rows safe in a spreadsheet, the window and
domain read like `dmarc summary`, a file that appears whole, and memory that stays flat.

Data goes in through the real import path (``tests.dmarc_data``); the command is driven
through the CLI where an operator meets it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import Engine

from inboxops.dmarc.export import COLUMNS, csv_cell, replacing
from tests.dmarc_data import aggregate, ingest, run
from tests.helpers import NOW, aggregate_xml

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
