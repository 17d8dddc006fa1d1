"""DNS answers kept in the database with their TTL: the cache every capability shares.

A reputation ingest asks for the MX of thousands of recipient domains, list hygiene for the MX
of every subscriber's domain each week, DMARC enrichment for the PTR of every source IP; all of
them ask through :class:`DnsCache`, which answers from ``dns_cache`` while an answer is fresh,
looks the rest up concurrently (bounded) through the one :class:`~inboxops.dns.Resolver`, and
stores what it learnt. TTLs are clamped to ``[dns] min_ttl .. max_ttl``; a SERVFAIL or a
timeout is kept only ``failure_ttl`` (it says nothing about the name). ``offline`` answers
from the cache alone, stale entries included, and reports the rest as not known.

Forward-confirmed reverse DNS (:meth:`DnsCache.fcrdns`) is composed from cached PTR and A/AAAA
answers, each kept for its own TTL, in two concurrent rounds (every PTR, then every name's
address): a 10,000-IP backfill costs two pool runs, not 10,000 serial PTR-then-A chains.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, select

from inboxops.config import DnsSettings
from inboxops.dns.resolve import (
    MAX_PTR_NAMES,
    AddressResult,
    FcrdnsResult,
    MxRecord,
    MxResult,
    PtrResult,
    Resolver,
    Status,
)
from inboxops.errors import StorageError
from inboxops.storage.db import database_errors, read_rows, retrying, upsert, write_transaction
from inboxops.storage.models import dns_cache
from inboxops.untrusted import log_value

log = logging.getLogger(__name__)

_CHUNK = 500  # names per IN (...) query


def resolver_from(settings: DnsSettings) -> Resolver:
    """The resolver the settings describe (system resolver unless [dns] nameservers)."""
    return Resolver(
        list(settings.nameservers) or None, timeout=settings.timeout, lifetime=settings.lifetime
    )


def _mx_to_json(r: MxResult) -> Any:
    return {"records": [list(x) for x in r.records], "implicit": r.implicit, "reason": r.reason}


def _mx_from_json(name: str, status: str, ttl: int | None, data: Any) -> MxResult:
    records = tuple(MxRecord(int(p), str(h)) for p, h in data.get("records", []))
    return MxResult(
        name, Status(status), records, ttl, bool(data.get("implicit")), str(data.get("reason", ""))
    )


def _ptr_to_json(r: PtrResult) -> Any:
    return {"names": list(r.names), "reason": r.reason}


def _ptr_from_json(name: str, status: str, ttl: int | None, data: Any) -> PtrResult:
    return PtrResult(
        name, Status(status), tuple(data.get("names", [])), ttl, str(data.get("reason", ""))
    )


def _addr_to_json(r: AddressResult) -> Any:
    return {"addresses": list(r.addresses), "reason": r.reason}


def _addr_from_json(name: str, status: str, ttl: int | None, data: Any) -> AddressResult:
    return AddressResult(
        name, Status(status), tuple(data.get("addresses", [])), ttl, str(data.get("reason", ""))
    )


def _min_ttl(*ttls: int | None) -> int | None:
    known = [t for t in ttls if t is not None]
    return min(known) if known else None


class DnsCache:
    """Cached lookups; ``resolver`` None means offline only."""

    def __init__(
        self,
        engine: Engine,
        resolver: Resolver | None,
        settings: DnsSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_workers: int = 16,
    ) -> None:
        self.engine = engine
        self.resolver = resolver
        self.settings = settings
        self.clock = clock
        self.max_workers = max_workers
        self.looked_up = 0  # live lookups made by this instance (for reports and tests)
        self.from_cache = 0
        self.last_live: set[str] = set()  # names the last call looked up live
        self.write_failed = False  # the database refused to store answers (see _write)

    # -- public -------------------------------------------------------------------------------

    def mx(
        self, domains: Iterable[str], *, offline: bool = False, refresh: bool = False
    ) -> dict[str, MxResult]:
        """MX answers for ``domains`` (lower-case, no trailing dot); missing ones when offline
        are left out of the result."""
        return self._many(
            "MX", domains, offline, refresh, _mx_to_json, _mx_from_json, self._resolve_mx
        )

    def ptr(
        self, ips: Iterable[str], *, offline: bool = False, refresh: bool = False
    ) -> dict[str, PtrResult]:
        return self._many(
            "PTR", ips, offline, refresh, _ptr_to_json, _ptr_from_json, self._resolve_ptr
        )

    def addresses(
        self,
        rdtype: str,
        names: Iterable[str],
        *,
        offline: bool = False,
        refresh: bool = False,
    ) -> dict[str, AddressResult]:
        """A (``rdtype="A"``) or AAAA answers for ``names``, cached under that type."""
        if rdtype not in ("A", "AAAA"):
            raise ValueError(f"rdtype must be A or AAAA, not {rdtype!r}")

        def resolve(batch: list[str]) -> list[Any]:
            assert self.resolver is not None
            kind: Literal["a", "aaaa"] = "a" if rdtype == "A" else "aaaa"
            return list(self.resolver.resolve_many(kind, batch, max_workers=self.max_workers))

        return self._many(rdtype, names, offline, refresh, _addr_to_json, _addr_from_json, resolve)

    def fcrdns(
        self, ips: Iterable[str], *, offline: bool = False, refresh: bool = False
    ) -> dict[str, FcrdnsResult]:
        """Forward-confirmed reverse DNS for ``ips``, with :meth:`Resolver.fcrdns`'s meaning:
        confirmed when a PTR name's A (AAAA for IPv6) includes the IP again; a forward lookup
        that failed transiently makes the result that failure, never "checked and false".

        Offline, an IP whose PTR is not cached is left out; one whose PTR is cached but whose
        names' addresses are not comes back unconfirmed with status ``error`` and reason
        "not cached".
        """
        ptrs = self.ptr(ips, offline=offline, refresh=refresh)
        live = set(self.last_live)
        wanted: dict[str, set[str]] = {"A": set(), "AAAA": set()}
        for ip, ptr in ptrs.items():
            if ptr.status is Status.OK:
                wanted[_family(ip)].update(ptr.names[:MAX_PTR_NAMES])
        forward: dict[str, dict[str, AddressResult]] = {}
        for rdtype, names in wanted.items():
            forward[rdtype] = self.addresses(rdtype, names, offline=offline, refresh=refresh)
            live |= self.last_live
        self.last_live = live
        return {ip: _confirm(ptr, forward[_family(ip)]) for ip, ptr in ptrs.items()}

    def store_mx(self, results: Sequence[MxResult], *, ttl: int) -> None:
        """Seed answers from elsewhere (``inboxops mx import``), trusted for ``ttl`` seconds."""
        now = self.clock()
        rows = [
            {
                "name": r.domain,
                "rdtype": "MX",
                "status": str(r.status),
                "answer": _mx_to_json(r),
                "ttl": ttl,
                "fetched_at": now,
                "expires_at": now + timedelta(seconds=ttl),
            }
            for r in results
        ]
        self._write(rows, required=True)

    # -- machinery ----------------------------------------------------------------------------

    def _resolve_mx(self, names: list[str]) -> list[Any]:
        assert self.resolver is not None
        return list(self.resolver.resolve_many("mx", names, max_workers=self.max_workers))

    def _resolve_ptr(self, names: list[str]) -> list[Any]:
        assert self.resolver is not None
        return list(self.resolver.resolve_many("ptr", names, max_workers=self.max_workers))

    def _many(
        self,
        rdtype: str,
        names: Iterable[str],
        offline: bool,
        refresh: bool,
        to_json: Callable[[Any], Any],
        from_json: Callable[[str, str, int | None, Any], Any],
        resolve: Callable[[list[str]], list[Any]],
    ) -> dict[str, Any]:
        wanted = sorted({n.strip().lower().rstrip(".") for n in names if n and n.strip()})
        self.last_live = set()
        now = self.clock()
        cached = {} if refresh and not offline else self._read(rdtype, wanted)
        out: dict[str, Any] = {}
        stale: list[str] = []
        for name in wanted:
            row = cached.get(name)
            if row is not None and (offline or row[3] > now):
                out[name] = from_json(name, row[0], row[1], row[2])
                self.from_cache += 1
            else:
                stale.append(name)
        if not stale or offline or self.resolver is None:
            return out
        results = resolve(stale)
        self.looked_up += len(stale)
        self.last_live = set(stale)
        rows = []
        for name, result in zip(stale, results, strict=True):
            out[name] = result
            ttl = self._keep_for(result.status, result.ttl)
            rows.append(
                {
                    "name": name,
                    "rdtype": rdtype,
                    "status": str(result.status),
                    "answer": to_json(result),
                    "ttl": result.ttl,
                    "fetched_at": now,
                    "expires_at": now + timedelta(seconds=ttl),
                }
            )
        self._write(rows)
        log.info(
            "event=dns_lookups rdtype=%s live=%d cached=%d",
            rdtype,
            len(stale),
            len(out) - len(stale),
        )
        return out

    def _keep_for(self, status: Status, ttl: int | None) -> int:
        s = self.settings
        if status.transient:
            return s.failure_ttl
        return max(s.min_ttl, min(s.max_ttl, ttl if ttl is not None else s.min_ttl))

    def _read(
        self, rdtype: str, names: list[str]
    ) -> dict[str, tuple[str, int | None, Any, datetime]]:
        c = dns_cache.c
        out: dict[str, tuple[str, int | None, Any, datetime]] = {}
        for i in range(0, len(names), _CHUNK):
            chunk = names[i : i + _CHUNK]
            query = select(c.name, c.status, c.ttl, c.answer, c.expires_at).where(
                c.rdtype == rdtype, c.name.in_(chunk)
            )
            [rows] = read_rows(self.engine, query, what="the DNS cache")
            for name, status, ttl, answer, expires in rows:
                at = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
                out[name] = (status, ttl, answer, at)
        return out

    def _write(self, rows: list[dict[str, Any]], *, required: bool = False) -> None:
        """Store answers. Looked-up answers are already in hand: when the database refuses the
        write (a read-only role behind a dashboard, a read-only file), the command goes on with
        them and says once that nothing was cached. Seeding (``required``) fails instead."""
        if not rows:
            return

        def write() -> None:
            with write_transaction(self.engine) as conn:
                for i in range(0, len(rows), _CHUNK):
                    conn.execute(upsert(conn, dns_cache, ["name", "rdtype"], rows[i : i + _CHUNK]))

        try:
            with database_errors(self.engine, "write"):
                retrying(write, what="DNS cache")
        except StorageError as exc:
            if required:
                raise
            if not self.write_failed:
                log.warning("event=dns_cache_not_written reason=%s", log_value(str(exc)))
            self.write_failed = True


def _family(ip: str) -> str:
    return "AAAA" if ":" in ip else "A"


def _confirm(ptr: PtrResult, forward: dict[str, AddressResult]) -> FcrdnsResult:
    """One IP's FCrDNS verdict from its PTR answer and its names' address answers."""
    if ptr.status is not Status.OK:
        return FcrdnsResult(ptr.ip, ptr.status, ttl=ptr.ttl, reason=ptr.reason)
    address = ipaddress.ip_address(ptr.ip)
    confirmed: list[str] = []
    ttls: list[int | None] = [ptr.ttl]
    failed: list[str] = []
    for name in ptr.names[:MAX_PTR_NAMES]:
        answer = forward.get(name)
        if answer is None:
            failed.append(f"{name}: not cached")
            continue
        ttls.append(answer.ttl)
        if any(ipaddress.ip_address(a) == address for a in answer.addresses):
            confirmed.append(name)
        elif answer.status.transient:
            failed.append(f"{name}: {answer.status} {answer.reason}".strip())
    ttl = _min_ttl(*ttls)
    if confirmed:
        return FcrdnsResult(ptr.ip, Status.OK, True, ptr.names, tuple(confirmed), ttl)
    if failed:
        status = Status.ERROR
        for name in ptr.names[:MAX_PTR_NAMES]:
            answer = forward.get(name)
            if answer is not None and answer.status.transient:
                status = answer.status
                break
        return FcrdnsResult(ptr.ip, status, False, ptr.names, (), ttl, "; ".join(failed))
    return FcrdnsResult(ptr.ip, Status.OK, False, ptr.names, (), ttl)
