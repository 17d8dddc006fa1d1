"""A real DNS server on 127.0.0.1 (dnslib, UDP and TCP on one free port) answering from a zone
the test edits (per ../shared/recipes/dns-test-server.md).

The code under test is pointed at it through configuration (``Resolver([server.nameserver])``),
never by patching, so timeouts, negative answers and TTLs go through dnspython exactly as in
production. The zone answers what tests need: MX (a domain whose MX moves between two runs),
null MX, NXDOMAIN and NODATA with an SOA (for negative TTLs), SERVFAIL / REFUSED, PTR, TXT,
A/AAAA, CNAME chains and DNSBL codes. ``slow()`` holds answers back to test timeouts; every query
is counted, so a cache test can assert that no lookup happened.

One server per session; the ``dns_server`` fixture hands each test an empty zone and zero counts.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from inboxops.dns import Resolver
from tests.conftest import require

try:
    from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, SOA, TXT, A
    from dnslib.server import DNSLogger, DNSServer
except ImportError:  # pragma: no cover - dnslib is a dev dependency
    DNSServer = None

DEFAULT_TTL = 300


def fqdn(name: str) -> str:
    """Lowercase, IDNA-encoded, with the trailing dot dnslib prints: the zone's key form."""
    name = name.strip().rstrip(".").lower()
    if not name.isascii():
        name = name.encode("idna").decode("ascii")
    return f"{name}."


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


def dnsbl_name(ip: str, zone: str) -> str:
    """The name a DNSBL is asked for ``ip``: reversed octets (or nibbles) under the zone."""
    address = ipaddress.ip_address(ip)
    rev = address.reverse_pointer.removesuffix(".in-addr.arpa").removesuffix(".ip6.arpa")
    return fqdn(f"{rev}.{zone}")


@dataclass
class Zone:
    """What the server answers; every setter replaces the whole RRset (name, type)."""

    records: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)
    rcodes: dict[str, str] = field(default_factory=dict)  # name -> SERVFAIL | REFUSED
    delays: dict[str, float] = field(default_factory=dict)  # name ("" = every name) -> seconds
    soa_ttl: int = 3600  # the SOA record's own TTL in negative answers
    negative_ttl: int = 60  # the SOA MINIMUM field; RFC 2308 takes the lesser of the two
    with_soa: bool = True  # False: negative answers carry no SOA (no negative TTL)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _set(self, name: str, qtype: str, rrs: list[tuple[int, Any]]) -> None:
        with self._lock:
            self.records[(fqdn(name), qtype)] = rrs

    def set_mx(
        self, domain: str, records: Iterable[tuple[Any, ...]], ttl: int = DEFAULT_TTL
    ) -> None:
        """``[(pref, host)]`` or ``[(pref, host, ttl)]``; ``(0, ".")`` is a null MX."""
        rrs = []
        for rec in records:
            host = "." if rec[1] == "." else fqdn(rec[1])
            rrs.append((rec[2] if len(rec) > 2 else ttl, MX(host, int(rec[0]))))
        self._set(domain, "MX", rrs)

    def set_null_mx(self, domain: str, ttl: int = DEFAULT_TTL) -> None:
        self.set_mx(domain, [(0, ".")], ttl)

    def set_a(self, name: str, addresses: Iterable[str], ttl: int = DEFAULT_TTL) -> None:
        self._set(name, "A", [(ttl, A(ip)) for ip in addresses])

    def set_aaaa(self, name: str, addresses: Iterable[str], ttl: int = DEFAULT_TTL) -> None:
        self._set(name, "AAAA", [(ttl, AAAA(ip)) for ip in addresses])

    def set_txt(self, name: str, texts: Iterable[str], ttl: int = DEFAULT_TTL) -> None:
        """One TXT record per text, split into 255-byte character-strings as DNS requires."""
        rrs = []
        for text in texts:
            data = text.encode()
            chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
            rrs.append((ttl, TXT(chunks)))
        self._set(name, "TXT", rrs)

    def set_ptr(self, ip: str, names: str | Iterable[str], ttl: int = DEFAULT_TTL) -> None:
        targets = [names] if isinstance(names, str) else list(names)
        self._set(reverse_name(ip), "PTR", [(ttl, PTR(fqdn(n))) for n in targets])

    def set_cname(self, name: str, target: str, ttl: int = DEFAULT_TTL) -> None:
        self._set(name, "CNAME", [(ttl, CNAME(fqdn(target)))])

    def list_ip(
        self, ip: str, zone: str, codes: Iterable[str] = ("127.0.0.2",), ttl: int = DEFAULT_TTL
    ) -> None:
        """Make DNSBL ``zone`` list ``ip`` with these return codes (127.255.255.x = errors)."""
        self._set(dnsbl_name(ip, zone), "A", [(ttl, A(code)) for code in codes])

    def servfail(self, name: str) -> None:
        with self._lock:
            self.rcodes[fqdn(name)] = "SERVFAIL"

    def refuse(self, name: str) -> None:
        with self._lock:
            self.rcodes[fqdn(name)] = "REFUSED"

    def slow(self, seconds: float, name: str | None = None) -> None:
        """Hold answers back ``seconds`` (for ``name`` only, or every name)."""
        with self._lock:
            self.delays[fqdn(name) if name else ""] = seconds

    def delete(self, name: str, qtype: str | None = None) -> None:
        key = fqdn(name)
        with self._lock:
            for k in [k for k in self.records if k[0] == key and qtype in (None, k[1])]:
                del self.records[k]
            self.rcodes.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self.records.clear()
            self.rcodes.clear()
            self.delays.clear()
            self.soa_ttl, self.negative_ttl, self.with_soa = 3600, 60, True

    def _snapshot(
        self, name: str, qtype: str
    ) -> tuple[str | None, float, list[tuple[str, str, int, Any]], bool]:
        """(rcode, delay, answers as (owner, type, ttl, rdata) following CNAMEs, name exists)."""
        with self._lock:
            delay = self.delays.get(name, self.delays.get("", 0.0))
            if name in self.rcodes:
                return self.rcodes[name], delay, [], True
            answers: list[tuple[str, str, int, Any]] = []
            owner = name
            for _ in range(8):  # follow CNAMEs inside the zone, as a recursive resolver would
                cname = self.records.get((owner, "CNAME"))
                if not cname or qtype == "CNAME":
                    break
                answers += [(owner, "CNAME", ttl, rd) for ttl, rd in cname]
                owner = str(cname[0][1].label).lower()
            answers += [(owner, qtype, ttl, rd) for ttl, rd in self.records.get((owner, qtype), [])]
            # a scan of the zone, only when needed (a 20,000-name zone answers at speed)
            exists = bool(answers) or any(
                k[0] == owner or k[0].endswith("." + owner) for k in self.records
            )
            return None, delay, answers, exists


class ZoneResolver:
    """dnslib's resolver interface (``resolve(request, handler)``) over a :class:`Zone`."""

    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        try:
            name, qtype = str(request.q.qname).lower(), QTYPE[request.q.qtype]
            self.server._count(name, qtype, handler.protocol)
            zone = self.server.zone
            rcode, delay, answers, exists = zone._snapshot(name, qtype)
            if delay:
                self.server._released.wait(delay)
            if rcode:
                reply.header.rcode = getattr(RCODE, rcode)
                return reply
            for owner, rtype, ttl, rdata in answers:
                reply.add_answer(RR(owner, getattr(QTYPE, rtype), ttl=ttl, rdata=rdata))
            if any(a[1] == qtype for a in answers):
                return reply
            if not exists and not answers:
                reply.header.rcode = RCODE.NXDOMAIN
            if zone.with_soa:
                apex = ".".join(name.rstrip(".").split(".")[-2:]) + "."
                times = (1, 3600, 600, 86400, zone.negative_ttl)
                soa = SOA(f"ns.{apex}", f"hostmaster.{apex}", times)
                reply.add_auth(RR(apex, QTYPE.SOA, ttl=zone.soa_ttl, rdata=soa))
        except Exception as exc:  # a bug in the double must fail the test, not hang it
            self.server.errors.append(repr(exc))
            reply = request.reply()
            reply.header.rcode = RCODE.SERVFAIL
        return reply


class DnsServer:
    """UDP and TCP dnslib servers on one free port of 127.0.0.1, sharing one :class:`Zone`."""

    def __init__(self) -> None:
        self.zone = Zone()
        self.queries: list[tuple[str, str, str]] = []  # (name, type, "udp"|"tcp"), in order
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._servers = self._bind()
        self.port = int(self._servers[0].server.server_address[1])
        for server in self._servers:
            server.start_thread()

    def _bind(self) -> list[Any]:
        # dnslib prints every query by default; keep only its decoding errors, as failures
        quiet = DNSLogger(log="error", prefix=False, logf=self.errors.append)
        for _ in range(50):
            udp = DNSServer(ZoneResolver(self), "127.0.0.1", 0, False, quiet)
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(ZoneResolver(self), "127.0.0.1", port, True, quiet)
            except OSError:
                udp.server.server_close()
                continue
            return [udp, tcp]
        raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def query_count(self) -> int:
        with self._lock:
            return len(self.queries)

    def queries_for(self, name: str, qtype: str | None = None) -> int:
        key = fqdn(name)
        with self._lock:
            return sum(1 for q in self.queries if q[0] == key and qtype in (None, q[1]))

    def resolver(self, *, timeout: float = 2.0, lifetime: float = 4.0) -> Resolver:
        """An :class:`inboxops.dns.Resolver` asking only this server."""
        return Resolver([self.nameserver], timeout=timeout, lifetime=lifetime)

    def _count(self, name: str, qtype: str, protocol: str) -> None:
        with self._lock:
            self.queries.append((name, qtype, protocol))

    def reset(self) -> None:
        """Empty zone, zero counts, and wake any answer still held back by ``slow()``."""
        self._released.set()
        self._released = threading.Event()
        self.zone.clear()
        with self._lock:
            self.queries.clear()
            self.errors.clear()

    def stop(self) -> None:
        self._released.set()
        for server in self._servers:
            server.server.shutdown()
            server.server.server_close()


@pytest.fixture(scope="session")
def dns_server_session() -> Iterator[DnsServer]:
    require(DNSServer is not None, "dnslib is not installed (pip install -e '.[dev]')")
    server = DnsServer()
    yield server
    server.stop()


@pytest.fixture
def dns_server(dns_server_session: DnsServer) -> Iterator[DnsServer]:
    """The session's DNS server with an empty zone and zero counts for this test."""
    dns_server_session.reset()
    yield dns_server_session
    errors = list(dns_server_session.errors)
    dns_server_session.reset()
    assert not errors, f"the DNS test server failed while answering: {errors}"
