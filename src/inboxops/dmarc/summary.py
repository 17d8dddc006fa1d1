"""Read side of DMARC storage: per-IP and per-reporter pass rates over a time window.

A report belongs to a window when its date range overlaps it, so a 97-hour report that began
before ``since`` still counts. Aggregation runs in SQL (one GROUP BY); only the small result is
shaped in Python, where ownership (IPs/CIDRs from the config) is decided.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, case, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from inboxops.config import IPNetwork
from inboxops.dmarc.model import IpStat
from inboxops.errors import StorageError
from inboxops.storage.models import dmarc_records as rec
from inboxops.storage.models import dmarc_reports as rep


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    def describe(self) -> str:
        return f"{self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class OrgStat:
    org: str
    reports: int
    messages: int
    passed: int
    ips: int

    @property
    def failed(self) -> int:
        return self.messages - self.passed

    @property
    def pass_rate(self) -> float:
        return self.passed / self.messages if self.messages else 1.0


_STRICTNESS = {"reject": 3, "quarantine": 2, "none": 1}


def is_own(ip: str, own: Sequence[IPNetwork]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr.version == net.version and addr in net for net in own)


def _filters(window: Window, domain: str | None) -> list[object]:
    conds: list[object] = [
        rep.c.begin_at < window.until,
        func.coalesce(rep.c.end_at, rep.c.begin_at) >= window.since,
    ]
    if domain:
        d = domain.lower().strip(".")
        conds.append(or_(rep.c.domain == d, rep.c.domain.like(f"%.{d}")))
    return conds


def ip_stats(
    engine: Engine, window: Window, own: Sequence[IPNetwork], domain: str | None = None
) -> list[IpStat]:
    """Per source IP: messages, DMARC passes, reporters, domains and policies; most mail first."""
    passed = func.sum(case((rec.c.dmarc_pass, rec.c.count), else_=0))
    query = (
        select(
            rec.c.source_ip,
            rep.c.org_name,
            rep.c.domain,
            rep.c.p,
            func.sum(rec.c.count),
            passed,
        )
        .select_from(rec.join(rep, rep.c.id == rec.c.report_pk))
        .where(and_(*_filters(window, domain)))  # type: ignore[arg-type]
        .group_by(rec.c.source_ip, rep.c.org_name, rep.c.domain, rep.c.p)
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read DMARC records: {type(exc).__name__}") from None
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    orgs: dict[str, set[str]] = defaultdict(set)
    domains: dict[str, set[str]] = defaultdict(set)
    policies: dict[str, set[str]] = defaultdict(set)
    for ip, org, dom, p, messages, ok in rows:
        acc[ip][0] += int(messages or 0)
        acc[ip][1] += int(ok or 0)
        orgs[ip].add(org)
        if dom:
            domains[ip].add(dom)
        if p:
            policies[ip].add(p)
    stats = [
        IpStat(
            ip=ip,
            messages=m,
            passed=ok,
            failed=m - ok,
            own=is_own(ip, own),
            orgs=tuple(sorted(orgs[ip])),
            domains=tuple(sorted(domains[ip])),
            policies=tuple(sorted(policies[ip], key=lambda p: -_STRICTNESS.get(p, 0))),
        )
        for ip, (m, ok) in acc.items()
    ]
    stats.sort(key=lambda s: (-s.messages, s.ip))
    return stats


def org_stats(engine: Engine, window: Window, domain: str | None = None) -> list[OrgStat]:
    """Per reporting organisation: reports, messages, passes and distinct source IPs."""
    passed = func.sum(case((rec.c.dmarc_pass, rec.c.count), else_=0))
    query = (
        select(
            rep.c.org_name,
            func.count(func.distinct(rep.c.id)),
            func.sum(rec.c.count),
            passed,
            func.count(func.distinct(rec.c.source_ip)),
        )
        .select_from(rep.outerjoin(rec, rep.c.id == rec.c.report_pk))
        .where(and_(*_filters(window, domain)))  # type: ignore[arg-type]
        .group_by(rep.c.org_name)
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read DMARC reports: {type(exc).__name__}") from None
    out = [
        OrgStat(org, int(n), int(m or 0), int(ok or 0), int(ips or 0))
        for org, n, m, ok, ips in rows
    ]
    out.sort(key=lambda o: (-o.messages, o.org))
    return out


def window_from(
    now: datetime, days: int | None, since: datetime | None, until: datetime | None
) -> Window:
    """``--days N`` or ``--since/--until`` (dates are UTC; ``until`` defaults to now)."""
    end = _utc(until) if until else now
    start = _utc(since) if since else end - timedelta(days=days or 7)
    return Window(start, end)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
