"""The database side of list hygiene: the removals log, and each domain's earlier operator.

``list_removals`` gets one row per subscriber blocklisted by a scrub or unsubscribed from a list
by a prune, written right after listmonk confirmed the batch (a dry run writes nothing).

Prune's "old operator" comes from ``mx_history``, which the
:class:`~inboxops.operators.domains.DomainClassifier` keeps: one row per period in which a
domain's classification stayed the same. After a classification the newest row is the present;
the old operator is the one of the newest *earlier* row that was a real answer (status ``ok``).
Failures in between (NXDOMAIN, null MX) are skipped, and SERVFAIL/timeouts never make a row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from inboxops.storage.db import database_errors, read_rows, retrying, write_transaction
from inboxops.storage.models import list_removals, mx_history

_CHUNK = 500


@dataclass(frozen=True)
class Removal:
    """One row of the removals log."""

    instance: str
    subscriber_id: int
    email: str
    domain: str
    action: str  # blocklist | unsubscribe
    reason: str  # excluded | mx_operator
    rule: str | None = None
    list_id: int | None = None
    list_name: str | None = None
    old_operator: str | None = None
    new_operator: str | None = None
    mx_host: str | None = None
    at: datetime | None = None  # when it was logged (set by record_removals)


def record_removals(engine: Engine, removals: Sequence[Removal], at: datetime) -> None:
    """Append ``removals`` (one short transaction, retried when the database is busy)."""
    if not removals:
        return
    rows = [{**r.__dict__, "at": at} for r in removals]

    def write() -> None:
        with write_transaction(engine) as conn:
            for i in range(0, len(rows), _CHUNK):
                conn.execute(list_removals.insert(), rows[i : i + _CHUNK])

    with database_errors(engine, "write"):
        retrying(write, what="removals log")


def removals(
    engine: Engine,
    *,
    instance: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    address: str | None = None,
) -> list[Removal]:
    """Logged removals, oldest first: of one instance, logged in ``[since, until)``, of one
    address (``user@example.com``, any case) or of a whole domain (``example.com``)."""
    c = list_removals.c
    query = select(list_removals).order_by(c.at, c.id)
    if instance is not None:
        query = query.where(c.instance == instance)
    if since is not None:
        query = query.where(c.at >= since)
    if until is not None:
        query = query.where(c.at < until)
    if address:
        wanted = address.strip().lower()
        query = query.where(
            func.lower(c.email) == wanted if "@" in wanted else func.lower(c.domain) == wanted
        )
    [rows] = read_rows(engine, query, what="the removals log")
    out = []
    for row in rows:
        values = {f: row._mapping[f] for f in Removal.__dataclass_fields__}
        at = values["at"]
        values["at"] = at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite keeps no offset
        out.append(Removal(**values))
    return out


def previous_operators(engine: Engine, domains: Iterable[str]) -> dict[str, str | None]:
    """Each domain's operator (``id`` or ``id/segment``) before its present classification;
    ``None`` when none is known (the domain was never classified differently before)."""
    wanted = sorted(set(domains))
    c = mx_history.c
    out: dict[str, str | None] = {}
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        query = (
            select(c.domain, c.status, c.operator, c.segment)
            .where(c.domain.in_(chunk))
            .order_by(c.domain, c.first_seen, c.id)
        )
        [rows] = read_rows(engine, query, what="MX history")
        history: dict[str, list[tuple[str, str | None]]] = {}
        for domain, status, operator, segment in rows:
            label = f"{operator}/{segment}" if operator and segment else operator
            history.setdefault(domain, []).append((status, label))
        for domain, periods in history.items():
            earlier = [op for status, op in periods[:-1] if status == "ok" and op]
            out[domain] = earlier[-1] if earlier else None
    return out
