"""Read side of DMARC storage: pass rates per IP and reporter, TLS outcomes, failure reports.

A report counts in the window that holds the midpoint of its date range (``window_at``,
docs/dmarc-summary.md); windows are half-open, so adjacent ones never count one report twice,
and a daily report from 00:00 to 24:00 counts on its own day only. Failure reports are single
messages and count by their arrival time. Aggregation runs in SQL (one GROUP BY); only the
small result is shaped in Python, where ownership (IPs/CIDRs from the config) is decided.
Forwarding evidence (:mod:`inboxops.dmarc.forwarding`) needs each failing record's override
reasons and auth-result domains: a second query streams the failing records only.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, case, false, func, or_, select

from inboxops.config import IPNetwork
from inboxops.dmarc.forwarding import reason_list, record_evidence
from inboxops.dmarc.model import IpStat, PassCounts
from inboxops.storage.db import database_errors, read_rows
from inboxops.storage.models import dmarc_auth_results as auth
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
class OrgStat(PassCounts):
    org: str
    reports: int
    messages: int
    passed: int
    ips: int


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
    engine: Engine,
    window: Window,
    own: Sequence[IPNetwork],
    domain: str | None = None,
    *,
    ours: Sequence[str] = (),
) -> list[IpStat]:
    """Per source IP: messages, DMARC passes, reporters, domains and policies; most mail first.

    Each external IP's failing messages are also weighed for forwarding evidence, with ``ours``
    as our domains (``[dmarc] domains``; empty: each report's own policy domain).
    """
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
    owned = {ip: is_own(ip, own) for ip in acc}
    if any(not owned[ip] and m > ok for ip, (m, ok) in acc.items()):
        evidence = forwarding_evidence(engine, window, domain, ours, skip=owned)
    else:
        evidence = {}
    stats = [
        IpStat(
            ip=ip,
            messages=m,
            passed=ok,
            failed=m - ok,
            own=owned[ip],
            orgs=tuple(sorted(orgs[ip])),
            domains=tuple(sorted(domains[ip])),
            policies=tuple(sorted(policies[ip], key=lambda p: -_STRICTNESS.get(p, 0))),
            forwarded_failed=evidence[ip][0] if ip in evidence else 0,
            evidence=tuple(sorted(evidence[ip][1])) if ip in evidence else (),
        )
        for ip, (m, ok) in acc.items()
    ]
    stats.sort(key=lambda s: (-s.messages, s.ip))
    return stats


def forwarding_evidence(
    engine: Engine,
    window: Window,
    domain: str | None,
    ours: Sequence[str],
    *,
    skip: dict[str, bool] | None = None,
) -> dict[str, tuple[int, set[str]]]:
    """Per external IP: (failing messages with forwarding evidence, evidence names seen).

    Streams the window's failing records with their auth results (one row per result), so a
    large spoofing campaign costs time, not memory. IPs with ``skip[ip]`` true are passed over.
    """
    configured = [d.strip(".").lower() for d in ours if d.strip(".")]
    joined = rec.join(rep, rep.c.id == rec.c.report_pk).outerjoin(
        auth, and_(auth.c.report_pk == rec.c.report_pk, auth.c.record_seq == rec.c.seq)
    )
    query = (
        select(
            rec.c.report_pk,
            rec.c.seq,
            rec.c.source_ip,
            rec.c.count,
            rec.c.reasons,
            rep.c.domain,
            auth.c.method,
            auth.c.domain.label("auth_domain"),
        )
        .select_from(joined)
        .where(and_(*report_filters(window, domain), rec.c.dmarc_pass == false()))  # type: ignore[arg-type]
        .order_by(rec.c.report_pk, rec.c.seq)
    )
    out: dict[str, tuple[int, set[str]]] = {}
    with database_errors(engine, "read DMARC records from"), engine.connect() as conn:
        rows = conn.execution_options(yield_per=2000).execute(query)
        for ip, count, reasons, policy_domain, methods in _records(rows):
            if skip and skip.get(ip):
                continue
            mine = configured or ([policy_domain.lower()] if policy_domain else [])
            found = record_evidence(
                reason_list(reasons),
                [d for m, d in methods if m == "dkim"],
                [d for m, d in methods if m == "spf"],
                mine,
            )
            if found:
                n, names = out.get(ip, (0, set()))
                names.add(found)
                out[ip] = (n + int(count or 0), names)
    return out


Auth = list[tuple[str, str]]  # (method, domain) of one record's auth results


def _records(rows: Iterable[Any]) -> Iterator[tuple[str, int, Any, str | None, Auth]]:
    """(ip, count, reasons, policy domain, [(method, domain)]) per record from joined rows."""
    key: tuple[int, int] | None = None
    current: tuple[str, int, Any, str | None] | None = None
    methods: Auth = []
    for row in rows:
        row_key = (row.report_pk, row.seq)
        if row_key != key:
            if current is not None:
                yield (*current, methods)
            key, methods = row_key, []
            current = (row.source_ip, row.count, row.reasons, row.domain)
        if row.method is not None:
            methods.append((row.method, row.auth_domain or ""))
    if current is not None:
        yield (*current, methods)


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
