"""Read side of the quarantine: what was refused, why, and the raw bytes to look at.

Refused inputs are kept rather than dropped so that an operator can see what a reporter sent,
and re-import it with ``inboxops dmarc import`` once a fix lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from inboxops.errors import StorageError
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
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read the quarantine: {type(exc).__name__}") from None
    return [QuarantineEntry(int(r[0]), r[1], r[2], int(r[3]), bool(r[4]), r[5]) for r in rows]


def raw_bytes(engine: Engine, entry_id: int) -> bytes | None:
    """The stored bytes of one entry (None when it was too large to keep or does not exist)."""
    try:
        with engine.connect() as conn:
            value = conn.execute(
                select(quarantine.c.raw).where(quarantine.c.id == entry_id)
            ).scalar_one_or_none()
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read the quarantine: {type(exc).__name__}") from None
    return bytes(value) if value is not None else None
