"""Which operator receives a domain's mail, from its MX (cached), with a history of changes.

Shared by the reputation monitor (recipients of ``relay=none`` attempts), list hygiene (scrub by
``operator:`` rules, prune when a domain's MX moves) and ``inboxops mx``. Each fresh answer is
compared with the domain's latest history row: the same classification only moves
``last_seen`` on; a different one starts a new row, so ``inboxops mx changes`` can list the
domains that moved (cox.net: cox -> yahoo). Lookup failures (SERVFAIL, timeouts) never start a
row: a failure is not a move.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select

from inboxops.dns.cache import DnsCache
from inboxops.dns.resolve import MxRecord, MxResult, Status
from inboxops.errors import SourceError
from inboxops.operators.classify import Classifier
from inboxops.operators.table import OTHER
from inboxops.storage.db import database_errors, read_rows, write_transaction
from inboxops.storage.models import mx_history
from inboxops.untrusted import one_line

UNKNOWN = "unknown"  # no operator can be decided: no MX, null MX, NXDOMAIN, lookup failed
_CHUNK = 500


@dataclass(frozen=True)
class DomainOperator:
    """A domain's receiving operator and how it was decided."""

    domain: str
    status: str  # the DNS status (ok, null_mx, nxdomain, ...) or "not_cached" (offline)
    operator: str  # an operator id, "other" (not a known operator) or "unknown"
    segment: str  # "" when the operator has none
    mx_host: str | None
    how: str
    source: str  # "cache" | "dns" | "import" | "none"

    @property
    def label(self) -> str:
        return f"{self.operator}/{self.segment}" if self.segment else self.operator


def classify_answer(classifier: Classifier, answer: MxResult, source: str) -> DomainOperator:
    """Pure: one MX answer -> the domain's operator."""
    domain = answer.domain
    if answer.status == Status.NULL_MX:
        return DomainOperator(
            domain, "null_mx", UNKNOWN, "", None, "null MX: accepts no mail", source
        )
    if answer.status != Status.OK or not answer.records:
        why = answer.reason or str(answer.status)
        return DomainOperator(domain, str(answer.status), UNKNOWN, "", None, why, source)
    decided = classifier.mx_set(answer.records)
    how = decided.how + (" (implicit MX: the domain's own address)" if answer.implicit else "")
    return DomainOperator(
        domain,
        "ok",
        decided.operator or UNKNOWN,
        decided.segment or "",
        decided.host,
        how,
        source,
    )


@dataclass
class ImportResult:
    domains: int = 0
    rows: int = 0
    bad_rows: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Change:
    """A domain whose classification changed: from one history row to the next."""

    domain: str
    at: datetime
    old_operator: str | None
    new_operator: str | None
    old_status: str
    new_status: str
    mx_host: str | None

    @property
    def moved(self) -> bool:
        """A real move between operators (not a lookup failure, a null MX or an NXDOMAIN)."""
        return (
            self.old_status == "ok"
            and self.new_status == "ok"
            and self.old_operator != self.new_operator
        )


class DomainClassifier:
    """Domains -> operators through the DNS cache, keeping ``mx_history`` up to date."""

    def __init__(
        self,
        engine: Engine,
        cache: DnsCache,
        classifier: Classifier,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.cache = cache
        self.classifier = classifier
        self.clock = clock

    def classify(
        self, domains: Iterable[str], *, offline: bool = False, refresh: bool = False
    ) -> dict[str, DomainOperator]:
        wanted = sorted({d.strip().lower().rstrip(".") for d in domains if d and d.strip()})
        answers = self.cache.mx(wanted, offline=offline, refresh=refresh)
        live = self.cache.last_live
        out: dict[str, DomainOperator] = {}
        new: list[DomainOperator] = []
        for domain in wanted:
            answer = answers.get(domain)
            if answer is None:
                out[domain] = DomainOperator(
                    domain, "not_cached", UNKNOWN, "", None, "not in the cache (offline)", "none"
                )
                continue
            result = classify_answer(self.classifier, answer, "dns" if domain in live else "cache")
            out[domain] = result
            if domain in live and result.status not in _TRANSIENT:
                new.append(result)
        self._record(new, "dns")
        return out

    def import_csv(self, path: Path, *, ttl: int) -> ImportResult:
        """Seed the cache from ``domain,mx_host`` rows (one per MX, in preference order)."""
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise SourceError(f"{path} is not UTF-8 text") from None
        result = ImportResult()
        hosts: dict[str, list[str]] = {}
        for n, row in enumerate(csv.reader(io.StringIO(text)), 1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            if n == 1 and [c.lower() for c in cells[:2]] == ["domain", "mx_host"]:
                continue
            if len(cells) < 2 or not _looks_like_name(cells[0]) or not _looks_like_name(cells[1]):
                result.bad_rows.append(f"line {n}: {one_line(','.join(row), 80)!r}")
                continue
            hosts.setdefault(cells[0].lower().rstrip("."), []).append(cells[1].lower().rstrip("."))
            result.rows += 1
        answers = [
            MxResult(domain, Status.OK, tuple(MxRecord(10 * (i + 1), h) for i, h in enumerate(mx)))
            for domain, mx in hosts.items()
        ]
        self.cache.store_mx(answers, ttl=ttl)
        self._record([classify_answer(self.classifier, a, "import") for a in answers], "import")
        result.domains = len(answers)
        return result

    # -- history ------------------------------------------------------------------------------

    def _latest(self, domains: list[str]) -> dict[str, tuple[int, str, str | None, str | None]]:
        c = mx_history.c
        out: dict[str, tuple[int, str, str | None, str | None]] = {}
        for i in range(0, len(domains), _CHUNK):
            chunk = domains[i : i + _CHUNK]
            newest = (
                select(c.domain, func.max(c.first_seen).label("at"))
                .where(c.domain.in_(chunk))
                .group_by(c.domain)
                .subquery()
            )
            query = select(c.domain, c.id, c.status, c.operator, c.segment).join(
                newest, (c.domain == newest.c.domain) & (c.first_seen == newest.c.at)
            )
            [rows] = read_rows(self.engine, query, what="MX history")
            for domain, pk, status, operator, segment in rows:
                out[domain] = (int(pk), status, operator, segment)
        return out

    def _record(self, results: list[DomainOperator], source: str) -> None:
        if not results:
            return
        now = self.clock()
        latest = self._latest([r.domain for r in results])
        c = mx_history.c
        with database_errors(self.engine, "write"), write_transaction(self.engine) as conn:
            for r in results:
                operator = None if r.operator == UNKNOWN else r.operator
                segment = r.segment or None
                hosts = [r.mx_host] if r.mx_host else []
                previous = latest.get(r.domain)
                if previous is not None and previous[1:] == (r.status, operator, segment):
                    conn.execute(
                        mx_history.update()
                        .where(c.id == previous[0])
                        .values(last_seen=now, mx_host=r.mx_host, mx_hosts=hosts)
                    )
                    continue
                conn.execute(
                    mx_history.insert().values(
                        domain=r.domain,
                        status=r.status,
                        operator=operator,
                        segment=segment,
                        mx_host=r.mx_host,
                        mx_hosts=hosts,
                        source=source,
                        first_seen=now,
                        last_seen=now,
                    )
                )

    def changes(self, since: datetime) -> list[Change]:
        """Every classification change that started at or after ``since``, oldest first."""
        return history_changes(self.engine, since)


_TRANSIENT = {"servfail", "timeout", "error"}


def history_changes(engine: Engine, since: datetime) -> list[Change]:
    c = mx_history.c
    moved = select(c.domain).where(c.first_seen >= since).distinct().subquery()
    query = (
        select(c.domain, c.first_seen, c.status, c.operator, c.mx_host)
        .where(c.domain.in_(select(moved.c.domain)))
        .order_by(c.domain, c.first_seen, c.id)
    )
    [rows] = read_rows(engine, query, what="MX history")
    out: list[Change] = []
    previous: tuple[str, str, str | None] | None = None
    for domain, at, status, operator, mx_host in rows:
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        if previous is not None and previous[0] == domain and at >= since:
            out.append(Change(domain, at, previous[2], operator, previous[1], status, mx_host))
        previous = (domain, status, operator)
    out.sort(key=lambda ch: (ch.at, ch.domain))
    return out


def _looks_like_name(text: str) -> bool:
    return bool(text) and " " not in text and "." in text.strip(".") and len(text) <= 253


__all__ = [
    "OTHER",
    "UNKNOWN",
    "Change",
    "DomainClassifier",
    "DomainOperator",
    "ImportResult",
    "classify_answer",
    "history_changes",
]


def domain_classifier(
    engine: Engine,
    settings: object,
    *,
    offline: bool,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DomainClassifier:
    """The one way every capability builds it: [dns] for lookups, [operators] rules."""
    from inboxops.config import Settings
    from inboxops.dns.cache import resolver_from

    assert isinstance(settings, Settings)
    resolver = None if offline else resolver_from(settings.dns)
    cache = DnsCache(engine, resolver, settings.dns, clock=clock)
    classifier = Classifier(dict(settings.operators.rules) or None)
    return DomainClassifier(engine, cache, classifier, clock=clock)
