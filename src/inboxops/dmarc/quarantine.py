"""Read side of the quarantine: what was refused, why, and the raw bytes to look at.

Refused inputs are kept rather than dropped so that an operator can see what a reporter sent,
and re-import it with ``inboxops dmarc import`` once a fix lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from inboxops.storage.db import read_rows
from inboxops.storage.models import quarantine


@dataclass(frozen=True)
class QuarantineEntry:
    id: int
    source: str
    reason: str
    size: int
    has_raw: bool
    stored_at: datetime


def entries(engine: Engine, limit: int = 100) -> list[QuarantineEntry]:
    """The newest ``limit`` refused inputs."""
    q = quarantine.c
    query = (
        select(q.id, q.source, q.reason, q.size, q.raw.is_not(None), q.stored_at)
        .order_by(q.id.desc())
        .limit(limit)
    )
    [rows] = read_rows(engine, query, what="the quarantine")
    return [QuarantineEntry(int(r[0]), r[1], r[2], int(r[3]), bool(r[4]), r[5]) for r in rows]


def raw_bytes(engine: Engine, entry_id: int) -> bytes | None:
    """The stored bytes of one entry (None when it was too large to keep or does not exist)."""
    [rows] = read_rows(
        engine, select(quarantine.c.raw).where(quarantine.c.id == entry_id), what="the quarantine"
    )
    value = rows[0][0] if rows else None
    return bytes(value) if value is not None else None
