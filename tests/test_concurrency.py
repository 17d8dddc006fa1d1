"""Two writers at once: an hourly fetch beside a manual backfill must both finish (item 22).

Real processes on the real databases: a backfill imports many reports while a second process
imports an overlapping set in the opposite order (two imports in opposite orders used to end in
"deadlock detected" on PostgreSQL), and a third stores reports one at a time exactly as
``dmarc fetch`` does (its own transaction per report; it used to die with "database is locked"
on SQLite after 31 s). Every process exits 0 and every report is stored once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from inboxops.storage.db import open_database
from inboxops.storage.models import dmarc_records, dmarc_reports
from tests.helpers import aggregate_xml

REPORTS = 900

# The IMAP path without a mailbox: Ingestor.ingest_bytes per message, each report committed
# before the call returns (what fetch does between FETCH and STORE).
FETCH_LIKE = """
import sys
from pathlib import Path
from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.store import DatabaseSink
from inboxops.storage.db import open_database
engine = open_database(sys.argv[1])
ingestor = Ingestor(DatabaseSink(engine))
new = 0
for path in sorted(Path(sys.argv[2]).iterdir()):
    new += ingestor.ingest_bytes(path.read_bytes(), f"imap:{path.name}").reports_new
engine.dispose()
print(new)
"""


def _write(directory: Path, numbers: range | list[int]) -> None:
    directory.mkdir(parents=True)
    for n in numbers:
        rows = [(f"192.0.2.{n % 250 + 1}", n + 1, True), ("203.0.113.1", 1, False)]
        (directory / f"{n:05d}.xml").write_bytes(aggregate_xml(report_id=f"r{n}", rows=rows))


def test_backfill_and_fetch_run_together(db_url: str, tmp_path: Path) -> None:
    backfill, reverse, hourly = tmp_path / "backfill", tmp_path / "reverse", tmp_path / "hourly"
    _write(backfill, range(REPORTS))
    # the same reports, named so that a directory walk meets them in the opposite order
    reverse.mkdir()
    for path in sorted(backfill.iterdir())[::3]:
        (reverse / f"{99999 - int(path.stem):05d}.xml").write_bytes(path.read_bytes())
    _write(hourly, range(REPORTS, REPORTS + 60))
    open_database(db_url).dispose()  # schema in place, so the race is on the data
    env = {**os.environ, "INBOXOPS_DB": db_url}
    cli = [sys.executable, "-m", "inboxops", "dmarc", "import", "--json"]
    procs = [
        subprocess.Popen(
            [*cli, str(backfill)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ),
        subprocess.Popen(
            [*cli, str(reverse)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ),
        subprocess.Popen(
            [sys.executable, "-c", FETCH_LIKE, db_url, str(hourly)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ),
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err.decode()[-800:]
    first, second = (json.loads(out) for out, _ in outs[:2])
    assert first["reports_new"] + second["reports_new"] == REPORTS
    assert first["reports_known"] + second["reports_known"] == len(list(reverse.iterdir()))
    assert int(outs[2][0]) == 60
    engine = open_database(db_url)
    with engine.connect() as conn:
        reports = conn.execute(select(func.count()).select_from(dmarc_reports)).scalar_one()
        records = conn.execute(select(func.count()).select_from(dmarc_records)).scalar_one()
    engine.dispose()
    assert (reports, records) == (REPORTS + 60, 2 * (REPORTS + 60))


def test_reputation_prune_beside_an_ingest_leaves_no_closed_day_and_loses_nothing(
    db_url: str, tmp_path: Path
) -> None:
    """`reputation prune` in the middle of an ingest of the same days: the ingest reads the log
    from a pipe, the first half is written (its batches committed), the prune runs, then the
    second half arrives, and the first quarter again (``cat mail.log mail.log.1``). Afterwards
    nothing before the first kept day is stored, the attempts of the kept days are exactly
    those of a clean run, and reading the log again adds nothing."""
    from datetime import UTC, date, datetime

    from inboxops.demo.maillog import write_maillog
    from inboxops.reputation.prune import prune
    from inboxops.storage.models import rep_attempts, rep_daily, rep_recipients

    log = tmp_path / "mail.log"
    write_maillog(log, lines=200_000, seed=3, start=datetime(2026, 11, 10, tzinfo=UTC), days=10)
    first_kept = date(2026, 11, 14)
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    ingest = ["reputation", "ingest", "--offline", "--json", "--year", "2026"]
    subprocess.run([sys.executable, "-m", "inboxops", "--db", clean, *ingest, str(log)], check=True)

    open_database(db_url).dispose()  # schema in place, so the race is on the data
    env = {**os.environ, "INBOXOPS_DB": db_url}
    small_batches = (
        "import sys; from inboxops.cli import main; import inboxops.reputation.ingest as i; "
        f"i.BATCH = 2000; sys.argv = ['inboxops', *{ingest!r}, '-']; main()"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", small_batches],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert writer.stdin is not None
    lines = log.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    writer.stdin.write(b"".join(lines[:half]))
    writer.stdin.flush()
    engine = open_database(db_url)
    try:
        for _ in range(3000):  # until the ingest has committed its first batches
            with engine.connect() as conn:
                if conn.execute(select(func.count()).select_from(rep_attempts)).scalar_one():
                    break
            time.sleep(0.02)
        pruned = prune(engine, 30, first_kept, pause=0)  # in this process, beside the writer
    finally:
        engine.dispose()
    assert writer.poll() is None  # still reading: the second half is yet to come
    # the rest, then the older days again (``cat mail.log mail.log.1``): skipped now
    out, err = writer.communicate(b"".join(lines[half:] + lines[: half // 2]), timeout=300)
    assert writer.returncode == 0, err.decode()[-800:]
    assert pruned.first_day == first_kept
    assert pruned.counts["rep_attempts"] > 0  # it deleted what the ingest had already written
    assert json.loads(out)["past_retention"] > 0  # and the ingest skipped the rest of it

    def attempts_per_day(url: str) -> dict[str, int]:
        engine = open_database(url)
        with engine.connect() as conn:
            rows = conn.execute(
                select(rep_daily.c.day, func.sum(rep_daily.c.attempts))
                .where(rep_daily.c.day >= first_kept)
                .group_by(rep_daily.c.day)
            ).all()
            early = (
                conn.execute(
                    select(func.count())
                    .select_from(rep_attempts)
                    .where(rep_attempts.c.day < first_kept)
                ).scalar_one()
                + conn.execute(
                    select(func.count())
                    .select_from(rep_recipients)
                    .where(rep_recipients.c.final_day < first_kept)
                ).scalar_one()
            )
        engine.dispose()
        if url != clean:
            assert early == 0  # nothing of a closed day is stored
        return {str(day): int(n) for day, n in rows}

    want = attempts_per_day(clean)
    assert len(want) == 6
    assert attempts_per_day(db_url) == want
    again = subprocess.run(
        [sys.executable, "-m", "inboxops", *ingest, str(log)],
        env=env,
        capture_output=True,
        check=True,
    )
    result = json.loads(again.stdout)
    assert result["new"] == 0
    assert result["past_retention"] > 0
    assert attempts_per_day(db_url) == want
