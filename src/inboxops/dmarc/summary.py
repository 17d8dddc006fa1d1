"""Read side of DMARC storage: pass rates per IP and reporter, TLS outcomes, failure reports.

A report counts in the window that holds the midpoint of its date range (``window_at``,
docs/dmarc-summary.md); windows are half-open, so adjacent ones never count one report twice,
and a daily report from 00:00 to 24:00 counts on its own day only. Failure reports are single
messages and count by their arrival time. Aggregation runs in SQL (one GROUP BY); only the
small result is shaped in Python, where ownership (IPs/CIDRs from the config) is decided.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, and_, case, func, or_, select

from inboxops.config import IPNetwork
from inboxops.dmarc.model import IpStat
from inboxops.storage.db import read_rows
from inboxops.storage.models import dmarc_records as rec
from inboxops.storage.models import dmarc_reports as rep
from inboxops.storage.models import failure_reports, tls_failures, tls_policies, tls_reports
from inboxops.window import Window

__all__ = [
    "Window",
    "failure_rows",
    "held_range",
    "ip_stats",
    "org_stats",
    "report_filters",
    "tls_stats",
]


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


def report_filters(window: Window, domain: str | None) -> list[object]:
    """The one rule every DMARC view (and export) uses: window by midpoint, domain by suffix."""
    conds: list[object] = [rep.c.window_at >= window.since, rep.c.window_at < window.until]
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
        .where(and_(*report_filters(window, domain)))  # type: ignore[arg-type]
        .group_by(rec.c.source_ip, rep.c.org_name, rep.c.domain, rep.c.p)
    )
    [rows] = read_rows(engine, query, what="DMARC records")
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
        .where(and_(*report_filters(window, domain)))  # type: ignore[arg-type]
        .group_by(rep.c.org_name)
    )
    [rows] = read_rows(engine, query, what="DMARC reports")
    out = [
        OrgStat(org, int(n), int(m or 0), int(ok or 0), int(ips or 0))
        for org, n, m, ok, ips in rows
    ]
    out.sort(key=lambda o: (-o.messages, o.org))
    return out


@dataclass(frozen=True)
class Held:
    """What the database holds, for the hint under an empty window."""

    reports: int
    first: datetime | None
    last: datetime | None

    def describe(self) -> str:
        if not self.reports or self.first is None or self.last is None:
            return "the database holds no DMARC reports yet"
        return (
            f"the database holds {self.reports} report(s) from {self.first:%Y-%m-%d} to "
            f"{self.last:%Y-%m-%d}; try --since {self.first:%Y-%m-%d}"
        )


def held_range(engine: Engine) -> Held:
    """How many aggregate reports are stored and over which dates (by ``window_at``)."""
    query = select(func.count(), func.min(rep.c.window_at), func.max(rep.c.window_at))
    [[(n, first, last)]] = read_rows(engine, query, what="DMARC reports")
    return Held(int(n or 0), _utc(first), _utc(last))


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite aggregates return text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TlsStat:
    """SMTP TLS outcome for one policy domain: did senders manage to deliver to us over TLS?"""

    policy_domain: str
    policy_type: str
    successful: int
    failed: int
    reporters: tuple[str, ...]
    failures: tuple[tuple[str, int], ...]  # (result-type, sessions), most first

    @property
    def failure_rate(self) -> float:
        total = self.successful + self.failed
        return self.failed / total if total else 0.0


def tls_stats(engine: Engine, window: Window, domain: str | None = None) -> list[TlsStat]:
    """Per policy domain: successful and failed TLS sessions, reporters, failure types."""
    conds = [tls_reports.c.window_at >= window.since, tls_reports.c.window_at < window.until]
    if domain:
        conds.append(tls_policies.c.policy_domain == domain.lower().strip("."))
    joined = tls_policies.join(tls_reports, tls_reports.c.id == tls_policies.c.report_pk)
    totals = (
        select(
            tls_policies.c.policy_domain,
            tls_policies.c.policy_type,
            func.sum(tls_policies.c.successful_sessions),
            func.sum(tls_policies.c.failed_sessions),
            tls_reports.c.org_name,
        )
        .select_from(joined)
        .where(and_(*conds))
        .group_by(tls_policies.c.policy_domain, tls_policies.c.policy_type, tls_reports.c.org_name)
    )
    kinds = (
        select(
            tls_policies.c.policy_domain,
            tls_failures.c.result_type,
            func.sum(tls_failures.c.failed_session_count),
        )
        .select_from(
            joined.join(
                tls_failures,
                and_(
                    tls_failures.c.report_pk == tls_policies.c.report_pk,
                    tls_failures.c.policy_seq == tls_policies.c.seq,
                ),
            )
        )
        .where(and_(*conds))
        .group_by(tls_policies.c.policy_domain, tls_failures.c.result_type)
    )
    rows, kind_rows = read_rows(engine, totals, kinds, what="SMTP TLS reports")
    acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    orgs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for dom, ptype, ok, bad, org in rows:
        acc[(dom, ptype)][0] += int(ok or 0)
        acc[(dom, ptype)][1] += int(bad or 0)
        orgs[(dom, ptype)].add(org)
    by_domain: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for dom, result_type, n in kind_rows:
        by_domain[dom].append((result_type, int(n or 0)))
    out = [
        TlsStat(
            dom,
            ptype,
            ok,
            bad,
            tuple(sorted(orgs[(dom, ptype)])),
            tuple(sorted(by_domain[dom], key=lambda kv: (-kv[1], kv[0]))),
        )
        for (dom, ptype), (ok, bad) in acc.items()
    ]
    out.sort(key=lambda t: (-t.failed, t.policy_domain))
    return out


@dataclass(frozen=True)
class FailureRow:
    arrival_date: datetime | None
    source_ip: str | None
    reported_domain: str | None
    auth_failure: str | None
    original_mail_from: str | None
    subject: str | None
    reporter: str | None


def failure_rows(engine: Engine, window: Window, limit: int = 50) -> list[FailureRow]:
    """The newest failure (ruf) reports that arrived in the window."""
    f = failure_reports.c
    when = func.coalesce(f.arrival_date, f.stored_at)
    query = (
        select(
            f.arrival_date,
            f.source_ip,
            f.reported_domain,
            f.auth_failure,
            f.original_mail_from,
            f.subject,
            f.reporter,
        )
        .where(when >= window.since, when < window.until)
        .order_by(when.desc())
        .limit(limit)
    )
    [rows] = read_rows(engine, query, what="failure reports")
    return [FailureRow(*row) for row in rows]
