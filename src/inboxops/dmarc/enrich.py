"""Who is sending as us: PTR, forward confirmation, base domain, service and country per IP.

Every answer comes through the one DNS layer: :class:`~inboxops.dns.cache.DnsCache` answers
from the ``dns_cache`` table while an answer is fresh and looks the rest up concurrently
(bounded by its pool), so nothing about enrichment is stored apart from those DNS answers; a
service map change applies to old reports at once. ``offline`` answers from the cache alone.

Private and documentation ranges are looked up like any other IP: the configured resolver
decides what it knows (a company resolver often has PTRs for its own 10/8).

When the resolver does not answer at all (every lookup of a whole batch timing out or failing),
enrichment stops asking for the rest and says so once, instead of waiting ``lifetime`` seconds
for each of thousands of IPs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from inboxops.config import Settings
from inboxops.dmarc.model import IpStat, PassCounts, Source
from inboxops.dmarc.services import ServiceMap
from inboxops.dns.resolve import FcrdnsResult, Status
from inboxops.errors import ConfigError
from inboxops.window import Window

log = logging.getLogger(__name__)

FIRST = 64  # IPs in the first round of lookups: a dead resolver shows within one lifetime
BATCH = 1000  # IPs per later round; after a dead round the rest is not asked
DEAD_SHARE = 0.9  # ... dead: this share of a round timed out or failed (SERVFAIL/REFUSED)
DEAD_MIN = 20  # ... and the round held at least this many IPs


@cache
def _icann() -> Any:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList(only_icann=True)


@lru_cache(maxsize=65536)
def base_domain(host: str | None) -> str | None:
    """The registrable domain of a host name (ICANN section of the Public Suffix List):
    ``o1.ptr42.sendgrid.net`` -> ``sendgrid.net``, ``x.ox.ac.uk`` -> ``ox.ac.uk``; None for a
    bare suffix or an empty name. The ICANN section only, so cloud hosts read as their
    provider's domain (``ec2-...compute-1.amazonaws.com`` -> ``amazonaws.com``)."""
    if not host:
        return None
    name = host.strip().rstrip(".").lower()
    found: str | None = _icann().privatesuffix(name)
    return found


class GeoIp:
    """Country codes from a MaxMind-format database (GeoLite2/GeoIP2 Country or City, DB-IP's
    lite databases...), read with ``maxminddb`` (``pip install 'inboxops[geoip]'``)."""

    def __init__(self, path: str) -> None:
        try:
            import maxminddb
        except ImportError:
            raise ConfigError(
                "[dmarc] geoip_db is set but the maxminddb package is missing; install it with "
                "pip install 'inboxops[geoip]'"
            ) from None
        where = Path(path).expanduser()
        try:
            self._reader = maxminddb.open_database(str(where))
        except FileNotFoundError:
            raise ConfigError(
                f"[dmarc] geoip_db {where} does not exist; give the path of a .mmdb file "
                "(e.g. GeoLite2-Country.mmdb) or leave it empty"
            ) from None
        except (OSError, ValueError, RuntimeError) as exc:  # InvalidDatabaseError: RuntimeError
            raise ConfigError(f"[dmarc] geoip_db {where}: not a MaxMind database ({exc})") from None

    def country(self, ip: str) -> str | None:
        """ISO 3166-1 alpha-2 code of the country, else of the registered country; None when
        the database does not know the IP (or holds no IPv6 and the IP is IPv6)."""
        try:
            record = self._reader.get(ip)
        except (ValueError, TypeError):
            return None
        if not isinstance(record, dict):
            return None
        for key in ("country", "registered_country"):
            part = record.get(key)
            if isinstance(part, dict) and isinstance(part.get("iso_code"), str):
                return str(part["iso_code"])
        return None

    def close(self) -> None:
        self._reader.close()


@dataclass
class EnrichStats:
    ips: int = 0
    looked_up: int = 0  # live DNS lookups (PTR and forward)
    from_cache: int = 0
    skipped: int = 0  # not asked: the resolver was not answering
    seconds: float = 0.0


def _rounds(items: list[str]) -> Iterable[list[str]]:
    if items:
        yield items[:FIRST]
    for i in range(FIRST, len(items), BATCH):
        yield items[i : i + BATCH]


class Enricher:
    """Sources for IPs: built once per command from settings, then :meth:`sources`."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        offline: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_workers: int = 32,
    ) -> None:
        from inboxops.dns.cache import DnsCache, resolver_from

        resolver = None if offline else resolver_from(settings.dns)
        self.offline = offline
        self.cache = DnsCache(engine, resolver, settings.dns, clock=clock, max_workers=max_workers)
        self.services = ServiceMap(settings.dmarc.services)
        self.geoip = GeoIp(settings.dmarc.geoip_db) if settings.dmarc.geoip_db else None
        self.stats = EnrichStats()
        self.warning = ""  # set when the resolver stopped answering

    def sources(self, ips: Iterable[str]) -> dict[str, Source]:
        """One :class:`Source` per distinct IP; unknown parts are None, never an error."""
        start = time.perf_counter()
        wanted = sorted({ip.strip() for ip in ips if ip and ip.strip()})
        out: dict[str, Source] = {}
        dead = False
        for chunk in _rounds(wanted):
            if dead:
                answers = self.cache.fcrdns(chunk, offline=True)
                self.stats.skipped += len(chunk) - len(answers)
            else:
                before = self.cache.looked_up
                answers = self.cache.fcrdns(chunk, offline=self.offline)
                dead = self._dead(chunk, answers, self.cache.looked_up - before)
            for ip in chunk:
                out[ip] = self._source(ip, answers.get(ip.lower()))
        self.stats.ips += len(wanted)
        self.stats.looked_up = self.cache.looked_up
        self.stats.from_cache = self.cache.from_cache
        self.stats.seconds += time.perf_counter() - start
        return out

    def _dead(self, chunk: Sequence[str], answers: dict[str, FcrdnsResult], live: int) -> bool:
        if self.offline or live < DEAD_MIN:
            return False
        failed = sum(1 for r in answers.values() if r.status in (Status.TIMEOUT, Status.SERVFAIL))
        if failed < DEAD_SHARE * len(chunk):
            return False
        self.warning = (
            f"DNS is not answering ({failed} of {len(chunk)} lookups timed out or failed); "
            "the remaining IPs were not looked up. Check [dns] nameservers / "
            "INBOXOPS_DNS_NAMESERVERS, or run with --offline"
        )
        log.warning("event=enrich_dns_dead failed=%d asked=%d", failed, len(chunk))
        return True

    def _source(self, ip: str, answer: FcrdnsResult | None) -> Source:
        country = self.geoip.country(ip) if self.geoip else None
        if answer is None:
            return Source(ip, country=country, status="not_cached")
        ptr = answer.hostname or (answer.names[0] if answer.names else None)
        fcrdns: bool | None
        if answer.confirmed:
            fcrdns = True
        elif answer.status is Status.OK and answer.names:
            fcrdns = False
        else:
            fcrdns = None  # no PTR, or the forward lookup could not be made
        match = self.services.match(ptr)
        return Source(
            ip,
            ptr=ptr,
            fcrdns=fcrdns,
            base_domain=base_domain(ptr),
            service=match.name if match else None,
            service_type=match.type if match else None,
            country=country,
            status=str(answer.status),
        )

    def close(self) -> None:
        if self.geoip is not None:
            self.geoip.close()


def attach(stats: Sequence[IpStat], sources: dict[str, Source]) -> list[IpStat]:
    """``stats`` with their sources; an IP whose forward-confirmed name is a service of type
    ``ours`` counts as an own IP (the own-IP rule judges it, never the spoofing rule)."""
    out = []
    for s in stats:
        src = sources.get(s.ip)
        if src is None:
            out.append(s)
            continue
        own = s.own or src.trusted_type == "ours"
        out.append(replace(s, source=src, own=own))
    return out


def enriched_ip_stats(
    engine: Engine,
    settings: Settings,
    window: Window,
    domain: str | None,
    *,
    offline: bool,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[list[IpStat], Enricher]:
    """Per-IP stats of the window (forwarding evidence included) with every IP's source."""
    from inboxops.dmarc.summary import ip_stats

    stats = ip_stats(engine, window, settings.dmarc.own_ips, domain, ours=settings.dmarc.domains)
    enricher = Enricher(engine, settings, offline=offline, clock=clock)
    try:
        return attach(stats, enricher.sources(s.ip for s in stats)), enricher
    finally:
        enricher.close()


@dataclass(frozen=True)
class ServiceStat(PassCounts):
    """DMARC outcome of every IP of one sending service (None: no service matched)."""

    service: str | None
    service_type: str | None
    ips: int
    confirmed_ips: int  # IPs whose PTR is forward-confirmed
    messages: int
    passed: int
    forwarded_failed: int


def by_service(stats: Iterable[IpStat]) -> list[ServiceStat]:
    """Per-IP stats grouped by service; most mail first, the unmatched IPs as one group."""
    acc: dict[tuple[str | None, str | None], list[int]] = {}
    for s in stats:
        src = s.source
        key = (src.service, src.service_type) if src is not None else (None, None)
        row = acc.setdefault(key, [0, 0, 0, 0, 0])
        row[0] += 1
        row[1] += 1 if src is not None and src.fcrdns else 0
        row[2] += s.messages
        row[3] += s.passed
        row[4] += min(s.forwarded_failed, s.failed)
    out = [ServiceStat(name, kind, *row) for (name, kind), row in acc.items()]
    out.sort(key=lambda r: (-r.messages, r.service is None, r.service or ""))
    return out
