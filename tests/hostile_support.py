"""What the hostile-input and corpus tests share: the ingest they run, and what they count."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from sqlalchemy import Engine, func, select

from inboxops.config import Limits
from inboxops.dmarc.ingest import Ingestor, IngestStats
from inboxops.dmarc.store import DatabaseSink
from inboxops.storage.models import dmarc_auth_results, dmarc_records, dmarc_reports, quarantine


def ingest(engine: Engine, paths: list[Path], limits: Limits | None = None) -> IngestStats:
    return Ingestor(DatabaseSink(engine), limits).ingest_paths(paths)


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (dmarc_reports, dmarc_records, dmarc_auth_results, quarantine)
        }


def stored_keys(engine: Engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(dmarc_reports.c.org_name, dmarc_reports.c.report_id))
        return {(str(org), str(rid)) for org, rid in rows}


def zip_members(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()
