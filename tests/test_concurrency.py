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
