"""Read side of the reputation store: daily rows per IP x operator, pools, sample replies.

Everything reads the daily rollup (``rep_daily``); the sending IP of a row is looked up from
``[reputation] senders`` here, at read time, so correcting that map corrects history.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import Engine, func, select

from inboxops.config import ReputationSettings
from inboxops.reputation.metrics import COUNTER_NAMES, DayRow, Figures
from inboxops.storage.db import read_rows
from inboxops.storage.models import rep_attempts, rep_daily, rep_health_runs


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def day_rows(
    engine: Engine,
    settings: ReputationSettings,
    days: Sequence[date],
    *,
    ips: Sequence[str] = (),
    operators: Sequence[str] = (),
) -> list[DayRow]:
    """Per day x sending IP x operator/segment, oldest day first, busiest pair first.

    ``ips`` filters by sending IP or syslog name; ``operators`` by operator id or
    ``operator/segment``.
    """
    if not days:
        return []
    c = rep_daily.c
    query = select(
        c.day, c.syslog_name, c.operator, c.segment, *(c[n] for n in COUNTER_NAMES)
    ).where(c.day >= days[0], c.day <= days[-1])
    [rows] = read_rows(engine, query, what="reputation figures")
    out: dict[tuple[date, str, str, str], DayRow] = {}
    for day, syslog_name, operator, segment, *counts in rows:
        ip = settings.sender(syslog_name)
        if ips and ip not in ips and syslog_name not in ips:
            continue
        label = f"{operator}/{segment}" if segment else operator
        if operators and operator not in operators and label not in operators:
            continue
        key = (_as_date(day), ip, operator, segment)
        row = out.get(key)
        if row is None:
            row = out[key] = DayRow(key[0], ip, operator, segment)
        row.figures.add(Figures(*(int(n or 0) for n in counts)))
    totals: dict[tuple[str, str, str], int] = {}
    for (_, ip, op, seg), row in out.items():
        totals[(ip, op, seg)] = totals.get((ip, op, seg), 0) + row.figures.attempts
    return sorted(
        out.values(),
        key=lambda r: (
            r.day,
            -totals[(r.sending_ip, r.operator, r.segment)],
            r.sending_ip,
            r.operator,
            r.segment,
        ),
    )


def pool_names(settings: ReputationSettings) -> list[str]:
    """The configured pools, or one pool "all" when none are configured."""
    return sorted(settings.pools) if settings.pools else ["all"]


def in_pool(settings: ReputationSettings, pool: str, syslog_name: str) -> bool:
    if pool == "all" and not settings.pools:
        return True
    return any(fnmatch.fnmatchcase(syslog_name, g) for g in settings.pools.get(pool, ()))


def pool_figures(
    engine: Engine, settings: ReputationSettings, day: date, pool: str
) -> tuple[Figures, list[str]]:
    """The day's figures summed over the syslog names of ``pool``, and those names."""
    c = rep_daily.c
    query = select(c.syslog_name, *(c[n] for n in COUNTER_NAMES)).where(c.day == day)
    [rows] = read_rows(engine, query, what="reputation figures")
    total = Figures()
    names: set[str] = set()
    for syslog_name, *counts in rows:
        if in_pool(settings, pool, syslog_name):
            total.add(Figures(*(int(n or 0) for n in counts)))
            names.add(syslog_name)
    return total, sorted(names)


def syslog_names_of(engine: Engine, settings: ReputationSettings, day: date, ip: str) -> list[str]:
    c = rep_daily.c
    [rows] = read_rows(
        engine, select(c.syslog_name).where(c.day == day).distinct(), what="reputation figures"
    )
    return sorted(n for (n,) in rows if settings.sender(n) == ip)


def sample_reply(
    engine: Engine, day: date, syslog_names: Sequence[str], operator: str, reasons: Sequence[str]
) -> str | None:
    """One real reply text of the day for these senders, operator and reason classes."""
    if not syslog_names:
        return None
    c = rep_attempts.c
    query = (
        select(c.reply)
        .where(
            c.day == day,
            c.syslog_name.in_(syslog_names),
            c.operator == operator,
            c.reason.in_(reasons),
            c.reply.is_not(None),
        )
        .order_by(c.ts.desc())
        .limit(1)
    )
    [rows] = read_rows(engine, query, what="reputation replies")
    return str(rows[0][0]) if rows else None


def held_days(engine: Engine) -> tuple[date | None, date | None]:
    c = rep_daily.c
    [[(first, last)]] = read_rows(
        engine, select(func.min(c.day), func.max(c.day)), what="reputation figures"
    )
    return (_as_date(first) if first else None, _as_date(last) if last else None)


def health_history(engine: Engine, since: date, pools: Sequence[str]) -> list[dict[str, object]]:
    """Recorded health checks of days since ``since``, newest run first."""
    c = rep_health_runs.c
    query = select(rep_health_runs).where(c.day >= since).order_by(c.run_at.desc(), c.id.desc())
    if pools:
        query = query.where(c.pool.in_(pools))
    [rows] = read_rows(engine, query, what="health history")
    out = []
    for row in rows:
        m = row._mapping
        run_at: datetime = m["run_at"]
        out.append(
            {
                "run_at": (run_at if run_at.tzinfo else run_at.replace(tzinfo=UTC)).isoformat(),
                "date": _as_date(m["day"]).isoformat(),
                "pool": m["pool"],
                "delivered": m["delivered"],
                "bounced": m["bounced"],
                "expired": m["expired"],
                "pending": m["pending"],
                "delivery_rate": m["delivery_rate"],
                "policy_blocked": m["policy_blocked"],
                "policy_blocked_550_571": m["policy_blocked_550_571"],
                "healthy": bool(m["healthy"]),
                "alerts": list(m["alerts"] or []),
            }
        )
    return out
