"""Which alerts were sent when: read before deciding, written only after a channel accepted."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from inboxops.dmarc.rules import Alert, Sent
from inboxops.errors import StorageError
from inboxops.storage.models import alert_state


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite returns naive UTC


def load(engine: Engine) -> dict[tuple[str, str], Sent]:
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    alert_state.c.kind,
                    alert_state.c.ip,
                    alert_state.c.last_sent_at,
                    alert_state.c.last_failed,
                )
            ).all()
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read alert state: {type(exc).__name__}") from None
    return {(k, ip): Sent(_aware(at), int(failed)) for k, ip, at, failed in rows}


def record(engine: Engine, alerts: Iterable[Alert], now: datetime) -> None:
    """Remember that ``alerts`` were delivered at ``now``."""
    try:
        with engine.begin() as conn:
            for a in alerts:
                key = (alert_state.c.kind == a.kind) & (alert_state.c.ip == a.ip)
                updated = conn.execute(
                    alert_state.update().where(key).values(last_sent_at=now, last_failed=a.failed)
                )
                if updated.rowcount == 0:
                    conn.execute(
                        alert_state.insert().values(
                            kind=a.kind,
                            ip=a.ip,
                            first_sent_at=now,
                            last_sent_at=now,
                            last_failed=a.failed,
                        )
                    )
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot record sent alerts: {type(exc).__name__}") from None


def forget(engine: Engine, keys: Iterable[tuple[str, str]]) -> None:
    """Drop the state of alerts whose all-clear was delivered."""
    try:
        with engine.begin() as conn:
            for kind, ip in keys:
                conn.execute(
                    alert_state.delete().where(
                        (alert_state.c.kind == kind) & (alert_state.c.ip == ip)
                    )
                )
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot update alert state: {type(exc).__name__}") from None
