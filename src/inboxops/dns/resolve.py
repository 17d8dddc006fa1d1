"""The one DNS layer: every lookup inboxops makes goes through a :class:`Resolver` instance.

Callers (reputation, list hygiene, DMARC enrichment, warmup checks) and the database TTL cache
built on top need two things dnspython's exceptions do not give directly: the TTL of *every*
answer, negative ones included (RFC 2308: the lesser of the SOA's TTL and MINIMUM), and a status
precise enough to cache or retry on. So no method here raises for a DNS outcome; each returns a
frozen result with ``status`` (a :class:`Status`), ``ttl`` (None when the answer gave none, as
after a timeout) and a short ``reason`` when something went wrong.

There is no module-level resolver: build one from settings and pass it around, which is also how
tests point it at the DNS server on loopback. dnspython's own cache stays off; caching is the
database's job, where it survives restarts.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, NamedTuple, TypeVar, overload

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.reversename

from inboxops.errors import ConfigError

log = logging.getLogger(__name__)

MAX_PTR_NAMES = 10  # forward-confirm at most this many PTR names (as SPF's "ptr" does)
_T = TypeVar("_T")
Kind = Literal["mx", "ptr", "a", "aaaa", "addresses", "txt", "fcrdns", "dnsbl"]


class Status(StrEnum):
    """What a lookup came to. Compares equal to its string value, for storage."""

    OK = "ok"
    NXDOMAIN = "nxdomain"  # the name does not exist
    NO_ANSWER = "no_answer"  # the name exists, without records of this type
    SERVFAIL = "servfail"  # every nameserver failed (SERVFAIL, REFUSED, unreachable)
    TIMEOUT = "timeout"  # no answer within the lifetime
    NULL_MX = "null_mx"  # RFC 7505 "MX 0 .": the domain accepts no mail
    ERROR = "error"  # a bad name or address, a malformed answer; see ``reason``

    @property
    def transient(self) -> bool:
        """Worth retrying later: the answer says nothing about the name itself."""
        return self in (Status.SERVFAIL, Status.TIMEOUT, Status.ERROR)


class MxRecord(NamedTuple):
    """One MX record; a tuple, so it can go straight to ``Classifier.mx_set``."""

    preference: int
    host: str  # lowercase, no trailing dot; "." for a null MX


@dataclass(frozen=True, slots=True)
class MxResult:
    """``records`` sorted by preference then host. ``implicit`` when the domain has no MX and
    its own A/AAAA stand in (RFC 5321 5.1): then ``records`` is ``(0, domain)``."""

    domain: str
    status: Status
    records: tuple[MxRecord, ...] = ()
    ttl: int | None = None
    implicit: bool = False
    reason: str = ""

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(r.host for r in self.records)


@dataclass(frozen=True, slots=True)
class AddressResult:
    name: str
    status: Status
    addresses: tuple[str, ...] = ()
    ttl: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PtrResult:
    ip: str
    status: Status
    names: tuple[str, ...] = ()
    ttl: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TxtResult:
    """``texts``: one string per TXT record, its character-strings joined (as SPF reads them)."""

    name: str
    status: Status
    texts: tuple[str, ...] = ()
    ttl: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FcrdnsResult:
    """Forward-confirmed reverse DNS: a PTR name whose own A/AAAA include the IP again."""

    ip: str
    status: Status
    confirmed: bool = False
    names: tuple[str, ...] = ()  # every PTR name
    confirmed_names: tuple[str, ...] = ()
    ttl: int | None = None
    reason: str = ""

    @property
    def hostname(self) -> str | None:
        """The name to show for the IP: the first confirmed PTR name, else None."""
        return self.confirmed_names[0] if self.confirmed_names else None


@dataclass(frozen=True, slots=True)
class DnsblResult:
    """``listed`` only with status ok. A zone's own error codes (Spamhaus 127.255.255.x: query
    through a public resolver, over quota, typo in the zone) are status error, never a listing."""

    ip: str
    zone: str
    status: Status
    listed: bool = False
    codes: tuple[str, ...] = ()
    ttl: int | None = None
    reason: str = ""
    qname: str = ""


@dataclass(frozen=True, slots=True)
class Nameserver:
    host: str  # an IP address; a resolver cannot look up its own nameserver's name
    port: int = 53

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 53 else f"{host}:{self.port}"


def parse_nameserver(text: str) -> Nameserver:
    """``"127.0.0.1"``, ``"127.0.0.1:5353"``, ``"2001:db8::1"``, ``"[::1]:5353"`` -> Nameserver.

    A bare IPv6 address never carries a port (``2001:db8::1:53`` is an address); bracket it.
    """
    raw = text.strip()
    hint = "write IP, IP:PORT, IPv6 or [IPv6]:PORT, e.g. '127.0.0.1:5353' or '[::1]:53'"
    host, port_text = raw, ""
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"DNS nameserver '{text}': unbalanced brackets; {hint}")
        port_text = rest[1:] if rest else ""
        if rest == ":":
            raise ConfigError(f"DNS nameserver '{text}': empty port; {hint}")
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
        if not port_text:
            raise ConfigError(f"DNS nameserver '{text}': empty port; {hint}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            f"DNS nameserver '{text}': '{host}' is not an IP address; {hint}"
        ) from None
    if raw.startswith("[") and address.version == 4:
        raise ConfigError(f"DNS nameserver '{text}': brackets are for IPv6 only; {hint}")
    port = 53
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ConfigError(
                f"DNS nameserver '{text}': port '{port_text}' is not a number 1-65535; {hint}"
            )
        port = int(port_text)
    return Nameserver(str(address), port)


def parse_nameservers(value: str | Iterable[str | Nameserver]) -> tuple[Nameserver, ...]:
    """Settings' ``[dns] nameservers`` (a list) or ``INBOXOPS_DNS_NAMESERVERS`` (one string,
    comma- or space-separated) -> Nameservers; ConfigError names the first bad entry."""
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    out: list[Nameserver] = []
    for item in items:
        if isinstance(item, Nameserver):
            out.append(item)
        elif isinstance(item, str) and item.strip():
            out.append(parse_nameserver(item))
        else:
            raise ConfigError(f"DNS nameserver {item!r}: not an address; write e.g. '127.0.0.1'")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Raw:
    status: Status
    rdatas: tuple[Any, ...] = ()
    ttl: int | None = None
    reason: str = ""


class _BadInput(ValueError):
    """A name or address we refuse to send; becomes ``Status.ERROR``, never escapes."""


def to_name(text: str) -> dns.name.Name:
    """A query name from user or log text: IDNA-encoded (UTS 46 when the ``idna`` package is
    present, as dnspython defaults), absolute. Raises ValueError for a name we will not send."""
    raw = text.strip().rstrip(".") if isinstance(text, str) else ""
    if not raw:
        raise _BadInput(f"empty name {text!r}")
    if any(ch.isspace() or ch in "@/\\" or not ch.isprintable() for ch in raw):
        raise _BadInput(f"'{text}' is not a domain name")
    try:
        return dns.name.from_text(raw, origin=dns.name.root, idna_codec=dns.name.IDNA_DEFAULT)
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise _BadInput(f"'{text}' is not a valid domain name ({_short(exc)})") from None


def _text(name: dns.name.Name) -> str:
    if name == dns.name.root:
        return "."
    return name.to_text(omit_final_dot=True).lower()


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text.strip())
    except (ValueError, AttributeError):
        raise _BadInput(f"{text!r} is not an IP address") from None


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _negative_ttl(response: dns.message.Message | None) -> int | None:
    """RFC 2308: a negative answer lives as long as min(SOA TTL, SOA MINIMUM)."""
    if response is None:
        return None
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return int(min(rrset.ttl, rrset[0].minimum))
    return None


def _min_ttl(*ttls: int | None) -> int | None:
    known = [t for t in ttls if t is not None]
    return min(known) if known else None


def _failed_servers(exc: dns.resolver.NoNameservers) -> str:
    parts = []
    for error in exc.kwargs.get("errors", []):
        server, tcp, port, what = str(error[0]), error[1], error[2], error[3]
        host = server.removeprefix("Do53:").rpartition("@")[0] or server  # "Do53:ip@port"
        where = str(Nameserver(host, int(port)))
        parts.append(f"{where}{' (tcp)' if tcp else ''} answered {_short(what, 80)}")
    return "; ".join(parts) or "all nameservers failed"


class Resolver:
    """dnspython's stub resolver behind a few typed lookups that never raise for DNS outcomes.

    ``nameservers`` None or empty: the system's (``/etc/resolv.conf``). ``timeout`` bounds each
    try, ``lifetime`` the whole lookup including retries. Safe to share between threads; its
    settings are fixed after construction.
    """

    def __init__(
        self,
        nameservers: str | Sequence[str | Nameserver] | None = None,
        *,
        timeout: float = 2.0,
        lifetime: float = 5.0,
    ) -> None:
        if not timeout > 0 or not lifetime > 0:
            raise ConfigError(f"DNS timeout ({timeout}) and lifetime ({lifetime}) must be > 0")
        servers = parse_nameservers(nameservers) if nameservers else ()
        if servers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(s.host, s.port) for s in servers]
        else:
            try:
                resolver = dns.resolver.Resolver(configure=True)
            except dns.exception.DNSException as exc:
                raise ConfigError(
                    f"no system DNS resolver ({_short(exc)}); set [dns] nameservers or "
                    "INBOXOPS_DNS_NAMESERVERS, e.g. '127.0.0.1:53'"
                ) from None
        resolver.timeout = timeout
        resolver.lifetime = lifetime
        resolver.cache = None
        self._resolver = resolver
        self.timeout = timeout
        self.lifetime = lifetime

    @property
    def nameservers(self) -> tuple[str, ...]:
        """The servers asked, as ``IP`` or ``IP:PORT`` text (for logs and ``config show``)."""
        out = []
        for server in self._resolver.nameservers:
            if isinstance(server, dns.nameserver.Do53Nameserver):
                out.append(str(Nameserver(server.address, server.port)))
            else:
                out.append(str(Nameserver(str(server), self._resolver.port)))
        return tuple(out)

    def _query(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> _Raw:
        raw = self._ask(qname, rdtype)
        if raw.status is not Status.OK:
            log.debug(
                "dns lookup name=%s type=%s status=%s reason=%s",
                qname,
                dns.rdatatype.to_text(rdtype),
                raw.status,
                raw.reason,
            )
        return raw

    def _ask(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> _Raw:
        try:
            answer = self._resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as exc:
            responses: dict[Any, dns.message.Message] = exc.kwargs.get("responses", {})
            ttls = [_negative_ttl(r) for r in responses.values()]
            return _Raw(Status.NXDOMAIN, ttl=_min_ttl(*ttls))
        except dns.resolver.NoNameservers as exc:
            return _Raw(Status.SERVFAIL, reason=_failed_servers(exc))
        except dns.exception.Timeout:
            return _Raw(Status.TIMEOUT, reason=f"no answer within {self.lifetime:g}s")
        except dns.exception.DNSException as exc:
            return _Raw(Status.ERROR, reason=_short(exc))
        if answer.rrset is None:
            return _Raw(Status.NO_ANSWER, ttl=_negative_ttl(answer.response))
        ttl = int(answer.chaining_result.minimum_ttl)  # the whole CNAME chain, if any
        return _Raw(Status.OK, tuple(answer.rrset), ttl)

    # -- lookups --------------------------------------------------------------------------

    def mx(self, domain: str) -> MxResult:
        """MX records; null MX is ``null_mx``; no MX but A/AAAA is an implicit MX."""
        try:
            qname = to_name(domain)
        except _BadInput as exc:
            return MxResult(str(domain), Status.ERROR, reason=str(exc))
        name = _text(qname)
        raw = self._query(qname, dns.rdatatype.MX)
        if raw.status is Status.NO_ANSWER:
            return self._implicit_mx(name, raw)
        if raw.status is not Status.OK:
            return MxResult(name, raw.status, ttl=raw.ttl, reason=raw.reason)
        records = sorted({MxRecord(int(r.preference), _text(r.exchange)) for r in raw.rdatas})
        real = tuple(r for r in records if r.host != ".")
        if not real:
            return MxResult(name, Status.NULL_MX, tuple(records), raw.ttl)
        note = "" if len(real) == len(records) else "ignored a null MX beside real MX records"
        return MxResult(name, Status.OK, real, raw.ttl, reason=note)

    def _implicit_mx(self, name: str, mx: _Raw) -> MxResult:
        found = self.addresses(name)
        if found.status is Status.OK:
            return MxResult(
                name,
                Status.OK,
                (MxRecord(0, name),),
                _min_ttl(mx.ttl, found.ttl),
                implicit=True,
                reason="no MX records; implicit MX: the domain's own A/AAAA (RFC 5321 5.1)",
            )
        if found.status.transient:
            return MxResult(name, found.status, reason=f"no MX records; {found.reason}")
        return MxResult(name, Status.NO_ANSWER, ttl=_min_ttl(mx.ttl, found.ttl))

    def a(self, name: str) -> AddressResult:
        return self._addresses(name, dns.rdatatype.A)

    def aaaa(self, name: str) -> AddressResult:
        return self._addresses(name, dns.rdatatype.AAAA)

    def _addresses(self, name: str, rdtype: dns.rdatatype.RdataType) -> AddressResult:
        try:
            qname = to_name(name)
        except _BadInput as exc:
            return AddressResult(str(name), Status.ERROR, reason=str(exc))
        raw = self._query(qname, rdtype)
        found = tuple(sorted({r.address for r in raw.rdatas}, key=ipaddress.ip_address))
        return AddressResult(_text(qname), raw.status, found, raw.ttl, raw.reason)

    def addresses(self, name: str) -> AddressResult:
        """A and AAAA together; ok when either family has addresses (``reason`` names a
        family that failed). NXDOMAIN on A skips the AAAA query."""
        v4 = self.a(name)
        if v4.status in (Status.NXDOMAIN, Status.ERROR):
            return v4
        v6 = self.aaaa(name)
        both = (v4, v6)
        found = tuple(ip for r in both for ip in r.addresses)
        notes = "; ".join(
            f"{fam}: {r.status} {r.reason}".strip()
            for fam, r in zip(("A", "AAAA"), both, strict=True)
            if r.status.transient
        )
        if found:  # TTL: until either family may change, its negative answer included
            return AddressResult(v4.name, Status.OK, found, _min_ttl(v4.ttl, v6.ttl), notes)
        worst = next((r.status for r in both if r.status.transient), v6.status)
        return AddressResult(v4.name, worst, (), _min_ttl(v4.ttl, v6.ttl), notes)

    def ptr(self, ip: str) -> PtrResult:
        try:
            address = _ip(ip)
        except _BadInput as exc:
            return PtrResult(str(ip), Status.ERROR, reason=str(exc))
        raw = self._query(dns.reversename.from_address(str(address)), dns.rdatatype.PTR)
        names = tuple(sorted({_text(r.target) for r in raw.rdatas}))
        return PtrResult(str(address), raw.status, names, raw.ttl, raw.reason)

    def txt(self, name: str) -> TxtResult:
        try:
            qname = to_name(name)
        except _BadInput as exc:
            return TxtResult(str(name), Status.ERROR, reason=str(exc))
        raw = self._query(qname, dns.rdatatype.TXT)
        texts = tuple(b"".join(r.strings).decode("utf-8", "replace") for r in raw.rdatas)
        return TxtResult(_text(qname), raw.status, texts, raw.ttl, raw.reason)

    def fcrdns(self, ip: str) -> FcrdnsResult:
        """PTR, then each name's A (or AAAA for IPv6); confirmed if any points back at ``ip``.

        Unconfirmed with a forward lookup that failed transiently reports that failure's status:
        "could not check" must not read as "checked and false".
        """
        ptr = self.ptr(ip)
        if ptr.status is not Status.OK:
            return FcrdnsResult(ptr.ip, ptr.status, ttl=ptr.ttl, reason=ptr.reason)
        address = ipaddress.ip_address(ptr.ip)
        lookup = self.a if address.version == 4 else self.aaaa
        confirmed: list[str] = []
        ttls: list[int | None] = [ptr.ttl]
        failed: list[AddressResult] = []
        for name in ptr.names[:MAX_PTR_NAMES]:
            forward = lookup(name)
            ttls.append(forward.ttl)
            if any(ipaddress.ip_address(a) == address for a in forward.addresses):
                confirmed.append(name)
            elif forward.status.transient:
                failed.append(forward)
        ttl = _min_ttl(*ttls)
        if confirmed:
            return FcrdnsResult(ptr.ip, Status.OK, True, ptr.names, tuple(confirmed), ttl)
        if failed:
            why = "; ".join(f"{f.name}: {f.status} {f.reason}".strip() for f in failed)
            return FcrdnsResult(ptr.ip, failed[0].status, False, ptr.names, (), ttl, why)
        return FcrdnsResult(ptr.ip, Status.OK, False, ptr.names, (), ttl)

    def dnsbl(self, ip: str, zone: str) -> DnsblResult:
        """Ask a DNS blocklist about ``ip``: listed with return codes, not listed, or an error.

        Answers outside 127.0.0.0/8 (an ISP resolver rewriting NXDOMAIN) and 127.255.255.x
        (Spamhaus: public resolver, over quota, zone typo) are errors, never listings.
        """
        try:
            address = _ip(ip)
            zname = to_name(zone)
        except _BadInput as exc:
            return DnsblResult(str(ip), str(zone), Status.ERROR, reason=str(exc))
        labels = dns.reversename.from_address(str(address)).labels[:-3]  # drop in-addr/ip6.arpa.
        qname = dns.name.Name(labels).concatenate(zname)
        base = (str(address), _text(zname))
        raw = self._query(qname, dns.rdatatype.A)
        if raw.status in (Status.NXDOMAIN, Status.NO_ANSWER):
            return DnsblResult(*base, Status.OK, False, (), raw.ttl, qname=_text(qname))
        if raw.status is not Status.OK:
            return DnsblResult(*base, raw.status, reason=raw.reason, qname=_text(qname))
        codes = tuple(sorted({r.address for r in raw.rdatas}, key=ipaddress.ip_address))
        errors = [c for c in codes if c.startswith("127.255.255.")]
        foreign = [c for c in codes if not c.startswith("127.")]
        if errors or foreign:
            why = (
                f"zone answered error code {', '.join(errors)} (refused: public resolver, "
                "over quota or wrong zone name)"
                if errors
                else f"answer {', '.join(foreign)} is outside 127.0.0.0/8 (a resolver "
                "rewriting NXDOMAIN?)"
            )
            return DnsblResult(*base, Status.ERROR, False, codes, raw.ttl, why, _text(qname))
        return DnsblResult(*base, Status.OK, True, codes, raw.ttl, qname=_text(qname))

    # -- many at once -----------------------------------------------------------------------

    @overload
    def resolve_many(
        self, kind: Literal["mx"], names: Iterable[str], *, max_workers: int = ...
    ) -> list[MxResult]: ...
    @overload
    def resolve_many(
        self, kind: Literal["ptr"], names: Iterable[str], *, max_workers: int = ...
    ) -> list[PtrResult]: ...
    @overload
    def resolve_many(
        self,
        kind: Literal["a", "aaaa", "addresses"],
        names: Iterable[str],
        *,
        max_workers: int = ...,
    ) -> list[AddressResult]: ...
    @overload
    def resolve_many(
        self, kind: Literal["txt"], names: Iterable[str], *, max_workers: int = ...
    ) -> list[TxtResult]: ...
    @overload
    def resolve_many(
        self, kind: Literal["fcrdns"], names: Iterable[str], *, max_workers: int = ...
    ) -> list[FcrdnsResult]: ...
    @overload
    def resolve_many(
        self, kind: Literal["dnsbl"], names: Iterable[str], *, zone: str, max_workers: int = ...
    ) -> list[DnsblResult]: ...

    def resolve_many(
        self, kind: Kind, names: Iterable[str], *, zone: str = "", max_workers: int = 16
    ) -> Sequence[object]:
        """One lookup per name on at most ``max_workers`` threads; results in input order.

        ``kind="dnsbl"`` takes IPs and the blocklist ``zone``.
        """
        lookups: dict[str, Callable[[str], object]] = {
            "mx": self.mx,
            "ptr": self.ptr,
            "a": self.a,
            "aaaa": self.aaaa,
            "addresses": self.addresses,
            "txt": self.txt,
            "fcrdns": self.fcrdns,
            "dnsbl": lambda ip: self.dnsbl(ip, zone),
        }
        if kind not in lookups:
            raise ValueError(f"unknown lookup kind {kind!r}; one of {', '.join(lookups)}")
        if kind == "dnsbl" and not zone:
            raise ValueError("resolve_many('dnsbl', ...) needs zone=")
        return _run_pool(lookups[kind], list(names), max_workers)


def _run_pool(fn: Callable[[str], _T], items: list[str], max_workers: int) -> list[_T]:
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    if len(items) <= 1 or max_workers == 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(min(max_workers, len(items)), thread_name_prefix="dns") as pool:
        return list(pool.map(fn, items))
