"""Which alerts were sent when: read before deciding, written only after a channel accepted.

One table (``alert_state``) for every capability, partitioned by ``kind``: a capability loads
and forgets only its own kinds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from inboxops.alerts.policy import Finding, Sent
from inboxops.errors import StorageError
from inboxops.storage.db import write_transaction
from inboxops.storage.models import alert_state


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite returns naive UTC


def load(engine: Engine, kinds: Collection[str]) -> dict[tuple[str, str], Sent]:
    """What was sent for alerts of these ``kinds``."""
    c = alert_state.c
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(c.kind, c.key, c.last_sent_at, c.magnitude).where(c.kind.in_(kinds))
            ).all()
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read alert state: {type(exc).__name__}") from None
    return {(k, key): Sent(_aware(at), int(m)) for k, key, at, m in rows}


def record(engine: Engine, findings: Iterable[Finding[object]], now: datetime) -> None:
    """Remember that ``findings`` were delivered at ``now``."""
    c = alert_state.c
    try:
        with write_transaction(engine) as conn:
            for f in findings:
                where = (c.kind == f.kind) & (c.key == f.key)
                updated = conn.execute(
                    alert_state.update()
                    .where(where)
                    .values(last_sent_at=now, magnitude=f.magnitude)
                )
                if updated.rowcount == 0:
                    conn.execute(
                        alert_state.insert().values(
                            kind=f.kind,
                            key=f.key,
                            first_sent_at=now,
                            last_sent_at=now,
                            magnitude=f.magnitude,
                        )
                    )
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot record sent alerts: {type(exc).__name__}") from None


def forget(engine: Engine, keys: Iterable[tuple[str, str]]) -> None:
    """Drop the state of alerts whose all-clear was delivered."""
    c = alert_state.c
    try:
        with write_transaction(engine) as conn:
            for kind, key in keys:
                conn.execute(alert_state.delete().where((c.kind == kind) & (c.key == key)))
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot update alert state: {type(exc).__name__}") from None


def forget_kinds(engine: Engine, kinds: Collection[str]) -> None:
    """Drop every state of these ``kinds``: the user turned them off, so nothing about them is
    pending. Turned on again later, they start afresh instead of announcing "resolved" for
    what nobody was watching in between."""
    c = alert_state.c
    try:
        with write_transaction(engine) as conn:
            conn.execute(alert_state.delete().where(c.kind.in_(kinds)))
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot update alert state: {type(exc).__name__}") from None
