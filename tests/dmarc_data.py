"""Reports built and stored through the real import path, for the prune and export tests.

``aggregate`` makes a report whose window is centred on a chosen instant; ``ingest`` stores
reports with ``Ingestor`` over ``DatabaseSink``, exactly as `inboxops dmarc import` does;
``run`` drives the CLI at the tests' fixed clock (``NOW``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from click.testing import CliRunner, Result
from sqlalchemy import Engine

from inboxops.cli import root
from inboxops.cli.context import AppContext
from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.store import DatabaseSink
from tests.helpers import NOW, aggregate_xml

HALF_DAY = timedelta(hours=12)


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(root, args, env=env, obj=AppContext(clock=lambda: NOW))


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


def ingest(engine: Engine, *items: tuple[str, bytes], refused: int = 0) -> None:
    ingestor = Ingestor(DatabaseSink(engine))
    failed = 0
    for name, data in items:
        failed += len(ingestor.ingest_bytes(data, name).failed)
    assert failed == refused
