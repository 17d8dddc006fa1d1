"""The DNS layer against a real DNS server on 127.0.0.1 (tests/servers/dns.py): no mocks.

Each status the lead's TTL cache stores is produced by a real answer on the wire: MX order and
TTL, null MX, NXDOMAIN and NODATA with their negative TTL, SERVFAIL, a timeout, the implicit MX,
PTR and forward-confirmed reverse DNS, DNSBL codes, IDNA names and many lookups at once.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import dns.message
import dns.query
import pytest

from inboxops.dns import (
    MxRecord,
    Nameserver,
    Resolver,
    Status,
    parse_nameserver,
    parse_nameservers,
)
from inboxops.errors import ConfigError
from inboxops.operators import Classifier
from tests.servers.dns import DnsServer


@pytest.fixture
def resolver(dns_server: DnsServer) -> Resolver:
    return dns_server.resolver()


# -- MX ----------------------------------------------------------------------------------------


def test_mx_sorted_by_preference_with_the_rrset_min_ttl(
    dns_server: DnsServer, resolver: Resolver
) -> None:
    dns_server.zone.set_mx(
        "example.com",
        [(20, "b.mx.example.net", 600), (10, "a.mx.example.net", 120), (10, "0.mx.example.net")],
        ttl=300,
    )
    result = resolver.mx("example.com")
    assert result.status is Status.OK
    assert f"{result.status}" == "ok"
    assert result.records == (
        MxRecord(10, "0.mx.example.net"),
        MxRecord(10, "a.mx.example.net"),
        MxRecord(20, "b.mx.example.net"),
    )
    assert result.ttl == 120
    assert (result.implicit, result.reason, result.domain) == (False, "", "example.com")


def test_mx_move_is_seen_on_the_next_lookup_and_classified(
    dns_server: DnsServer, resolver: Resolver
) -> None:
    classifier = Classifier()
    dns_server.zone.set_mx("cox.example", [(10, "cxr.mx.a.cloudfilter.net")])
    before = classifier.mx_set(resolver.mx("cox.example").records)
    dns_server.zone.set_mx("cox.example", [(1, "mx-aol.mail.gm0.yahoodns.net")])
    after = classifier.mx_set(resolver.mx("cox.example").records)
    assert (before.operator, after.operator) == ("cox", "yahoo")
    assert dns_server.queries_for("cox.example", "MX") == 2  # no cache inside the resolver


def test_null_mx(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.set_null_mx("nomail.example", ttl=900)
    result = resolver.mx("nomail.example")
    assert result.status is Status.NULL_MX
    assert result.records == (MxRecord(0, "."),)
    assert result.ttl == 900
    assert Classifier().mx_set(result.records).outcome == "null_mx"


def test_null_mx_beside_real_records_keeps_the_real_ones(
    dns_server: DnsServer, resolver: Resolver
) -> None:
    dns_server.zone.set_mx("mixed.example", [(0, "."), (10, "mx1.comcast.net")])
    result = resolver.mx("mixed.example")
    assert (result.status, result.hosts) == (Status.OK, ("mx1.comcast.net",))
    assert "null MX" in result.reason


def test_nxdomain_carries_the_negative_ttl(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.set_a("exists.example", ["192.0.2.1"])
    dns_server.zone.negative_ttl = 120
    result = resolver.mx("missing.example")
    assert (result.status, result.records, result.ttl) == (Status.NXDOMAIN, (), 120)
    dns_server.zone.soa_ttl = 30  # RFC 2308: the lesser of the SOA's TTL and MINIMUM
    assert resolver.mx("missing.example").ttl == 30
    dns_server.zone.with_soa = False
    assert resolver.mx("missing.example").ttl is None


def test_servfail_and_refused_are_servfail_with_a_reason(
    dns_server: DnsServer, resolver: Resolver
) -> None:
    dns_server.zone.servfail("broken.example")
    result = resolver.mx("broken.example")
    assert (result.status, result.ttl) == (Status.SERVFAIL, None)
    assert f"{dns_server.nameserver} answered SERVFAIL" in result.reason
    dns_server.zone.refuse("refused.example")
    assert "REFUSED" in resolver.mx("refused.example").reason
    assert Status.SERVFAIL.transient


def test_timeout_when_the_server_is_slow(dns_server: DnsServer) -> None:
    dns_server.zone.set_mx("slow.example", [(10, "mx.slow.example")])
    dns_server.zone.slow(2.0, "slow.example")
    resolver = dns_server.resolver(timeout=0.2, lifetime=0.4)
    started = time.monotonic()
    result = resolver.mx("slow.example")
    assert time.monotonic() - started < 1.5
    assert result.status is Status.TIMEOUT
    assert result.ttl is None
    assert "0.4s" in result.reason


def test_unreachable_nameserver_does_not_raise() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = Resolver([f"127.0.0.1:{port}"], timeout=0.2, lifetime=0.5).mx("example.com")
    assert result.status in (Status.SERVFAIL, Status.TIMEOUT)
    assert result.status.transient


def test_no_mx_but_an_address_is_an_implicit_mx(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.set_a("implicit.example", ["192.0.2.10"], ttl=200)
    dns_server.zone.negative_ttl = 600
    result = resolver.mx("implicit.example")
    assert result.status is Status.OK
    assert result.implicit
    assert result.records == (MxRecord(0, "implicit.example"),)
    assert result.ttl == 200  # min(MX negative TTL 600, A TTL 200)
    assert "RFC 5321" in result.reason


def test_no_mx_and_no_address_is_no_answer(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.set_txt("textonly.example", ["v=spf1 -all"])
    result = resolver.mx("textonly.example")
    assert (result.status, result.implicit, result.records, result.ttl) == (
        Status.NO_ANSWER,
        False,
        (),
        60,
    )


def test_ttl_of_an_answer_through_a_cname_is_the_chain_minimum(
    dns_server: DnsServer, resolver: Resolver
) -> None:
    dns_server.zone.set_cname("alias.example", "target.example", ttl=30)
    dns_server.zone.set_mx("target.example", [(10, "mx.target.example")], ttl=300)
    result = resolver.mx("alias.example")
    assert (result.status, result.hosts, result.ttl) == (Status.OK, ("mx.target.example",), 30)


# -- addresses and TXT -------------------------------------------------------------------------


def test_a_aaaa_and_addresses(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.set_a("host.example", ["192.0.2.20", "192.0.2.3"], ttl=100)
    dns_server.zone.set_aaaa("host.example", ["2001:db8::25"], ttl=50)
    assert resolver.a("host.example").addresses == ("192.0.2.3", "192.0.2.20")
    assert resolver.aaaa("host.example").addresses == ("2001:db8::25",)
    both = resolver.addresses("host.example")
    assert (both.status, both.ttl) == (Status.OK, 50)
    assert both.addresses == ("192.0.2.3", "192.0.2.20", "2001:db8::25")
    dns_server.zone.set_a("v4.example", ["192.0.2.1"])
    assert resolver.aaaa("v4.example").status is Status.NO_ANSWER
    assert resolver.addresses("v4.example").addresses == ("192.0.2.1",)
    missing = resolver.addresses("nowhere.example")
    assert missing.status is Status.NXDOMAIN
    assert dns_server.queries_for("nowhere.example", "AAAA") == 0  # NXDOMAIN on A is enough


def test_txt_joins_character_strings_and_keeps_underscores(
    dns_server: DnsServer, resolver: Resolver
) -> None:
    long_key = "v=DKIM1; k=rsa; p=" + "A" * 400
    dns_server.zone.set_txt("sel._domainkey.example.com", [long_key], ttl=3600)
    dns_server.zone.set_txt("_dmarc.example.com", ["v=DMARC1; p=reject"])
    dkim = resolver.txt("sel._domainkey.Example.COM")
    assert (dkim.status, dkim.texts, dkim.ttl) == (Status.OK, (long_key,), 3600)
    assert dkim.name == "sel._domainkey.example.com"
    assert resolver.txt("_dmarc.example.com").texts == ("v=DMARC1; p=reject",)


# -- PTR and forward-confirmed reverse DNS ------------------------------------------------------


def test_ptr(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.set_ptr("192.0.2.1", ["mail.example.com", "alias.example.com"], ttl=3600)
    result = resolver.ptr("192.0.2.1")
    assert (result.status, result.names, result.ttl) == (
        Status.OK,
        ("alias.example.com", "mail.example.com"),
        3600,
    )
    assert resolver.ptr("192.0.2.99").status is Status.NXDOMAIN
    assert resolver.ptr("not-an-ip").status is Status.ERROR


def test_fcrdns_confirmed(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.set_ptr("192.0.2.1", ["mail.example.com", "other.example.com"], ttl=3600)
    dns_server.zone.set_a("mail.example.com", ["192.0.2.1", "192.0.2.2"], ttl=600)
    dns_server.zone.set_a("other.example.com", ["198.51.100.1"])
    result = resolver.fcrdns("192.0.2.1")
    assert (result.status, result.confirmed) == (Status.OK, True)
    assert result.confirmed_names == ("mail.example.com",)
    assert result.hostname == "mail.example.com"
    assert result.names == ("mail.example.com", "other.example.com")
    assert result.ttl == 300


def test_fcrdns_ipv6_compares_addresses_not_text(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.set_ptr("2001:db8::25", "mx6.example.com")
    dns_server.zone.set_aaaa("mx6.example.com", ["2001:0db8:0000::0025"])
    result = resolver.fcrdns("2001:0db8::0:25")
    assert (result.ip, result.confirmed, result.hostname) == (
        "2001:db8::25",
        True,
        "mx6.example.com",
    )


def test_fcrdns_unconfirmed_and_failures(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.set_ptr("192.0.2.7", "liar.example.com")
    dns_server.zone.set_a("liar.example.com", ["198.51.100.7"])
    result = resolver.fcrdns("192.0.2.7")
    assert (result.status, result.confirmed, result.hostname) == (Status.OK, False, None)
    assert result.names == ("liar.example.com",)

    dns_server.zone.set_ptr("192.0.2.8", "broken.example.com")
    dns_server.zone.servfail("broken.example.com")
    broken = resolver.fcrdns("192.0.2.8")
    assert (broken.status, broken.confirmed) == (Status.SERVFAIL, False)  # unknown, not "false"
    assert "broken.example.com" in broken.reason

    assert resolver.fcrdns("192.0.2.9").status is Status.NXDOMAIN  # no PTR at all


# -- DNSBL -------------------------------------------------------------------------------------

ZEN = "zen.spamhaus.org"


def test_dnsbl_listed(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.list_ip("127.0.0.2", ZEN, ["127.0.0.4", "127.0.0.2"], ttl=120)
    result = resolver.dnsbl("127.0.0.2", ZEN)
    assert (result.status, result.listed, result.codes, result.ttl) == (
        Status.OK,
        True,
        ("127.0.0.2", "127.0.0.4"),
        120,
    )
    assert result.qname == "2.0.0.127.zen.spamhaus.org"


def test_dnsbl_not_listed(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.list_ip("127.0.0.2", ZEN)
    dns_server.zone.negative_ttl = 90
    result = resolver.dnsbl("192.0.2.55", ZEN)
    assert (result.status, result.listed, result.codes, result.ttl) == (Status.OK, False, (), 90)
    assert result.qname == "55.2.0.192.zen.spamhaus.org"


@pytest.mark.parametrize("code", ["127.255.255.254", "127.255.255.255", "127.255.255.252"])
def test_dnsbl_spamhaus_error_codes_are_errors_not_listings(
    dns_server: DnsServer, resolver: Resolver, code: str
) -> None:
    dns_server.zone.list_ip("192.0.2.1", ZEN, [code])
    result = resolver.dnsbl("192.0.2.1", ZEN)
    assert (result.status, result.listed, result.codes) == (Status.ERROR, False, (code,))
    assert "error code" in result.reason


def test_dnsbl_answer_outside_loopback_is_an_error(
    dns_server: DnsServer, resolver: Resolver
) -> None:
    dns_server.zone.list_ip("192.0.2.1", ZEN, ["198.51.100.80"])  # an ISP's "search page"
    result = resolver.dnsbl("192.0.2.1", ZEN)
    assert (result.status, result.listed) == (Status.ERROR, False)
    assert "outside 127.0.0.0/8" in result.reason


def test_dnsbl_ipv6_and_bad_input(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.list_ip("2001:db8::1", "v6.bl.example", ["127.0.0.3"])
    result = resolver.dnsbl("2001:db8::1", "v6.bl.example")
    assert (result.listed, result.codes) == (True, ("127.0.0.3",))
    assert result.qname == "1." + "0." * 23 + "8.b.d.0.1.0.0.2.v6.bl.example"
    assert resolver.dnsbl("bogus", ZEN).status is Status.ERROR
    dns_server.zone.servfail("9.2.0.192.zen.spamhaus.org")
    assert resolver.dnsbl("192.0.2.9", ZEN).status is Status.SERVFAIL


# -- names -------------------------------------------------------------------------------------


def test_unicode_domains_are_idna_encoded(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.set_mx("xn--bcher-kva.example", [(10, "mx.xn--bcher-kva.example")])
    for spelling in ("bücher.example", "BÜCHER.example.", "xn--bcher-kva.example"):
        result = resolver.mx(spelling)
        assert (result.status, result.domain) == (Status.OK, "xn--bcher-kva.example")
        assert result.hosts == ("mx.xn--bcher-kva.example",)


@pytest.mark.parametrize(
    "name",
    ["", " ", ".", "exa mple.com", "user@example.com", "a" * 64 + ".com", "☃.example", "x/y.com"],
)
def test_invalid_names_are_error_status_and_never_sent(
    dns_server: DnsServer, resolver: Resolver, name: str
) -> None:
    for result in (resolver.mx(name), resolver.txt(name), resolver.a(name)):
        assert result.status is Status.ERROR
        assert result.reason
    assert dns_server.query_count == 0


# -- nameserver settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "canonical"),
    [
        ("127.0.0.1", "127.0.0.1", 53, "127.0.0.1"),
        ("127.0.0.1:5353", "127.0.0.1", 5353, "127.0.0.1:5353"),
        (" 10.0.0.1:53 ", "10.0.0.1", 53, "10.0.0.1"),
        ("[::1]:5353", "::1", 5353, "[::1]:5353"),
        ("[::1]", "::1", 53, "[::1]"),
        ("2001:db8::1", "2001:db8::1", 53, "[2001:db8::1]"),
        ("2001:0db8:0::1", "2001:db8::1", 53, "[2001:db8::1]"),
        ("2001:db8::1:53", "2001:db8::1:53", 53, "[2001:db8::1:53]"),  # bare IPv6: no port
    ],
)
def test_parse_nameserver(text: str, host: str, port: int, canonical: str) -> None:
    server = parse_nameserver(text)
    assert server == Nameserver(host, port)
    assert str(server) == canonical


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("localhost", "'localhost' is not an IP address"),
        ("dns.google:53", "'dns.google' is not an IP address"),
        ("300.1.1.1", "is not an IP address"),
        ("127.0.0.1:0", "port '0' is not a number 1-65535"),
        ("127.0.0.1:65536", "port '65536'"),
        ("127.0.0.1:abc", "port 'abc'"),
        ("127.0.0.1:", "empty port"),
        ("[::1]:", "empty port"),
        ("[::1", "unbalanced brackets"),
        ("[::1]x", "unbalanced brackets"),
        ("[127.0.0.1]:53", "brackets are for IPv6 only"),
        ("", "is not an IP address"),
    ],
)
def test_bad_nameserver_is_a_config_error_naming_it(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_nameserver(text)
    assert fragment in str(excinfo.value)
    assert f"'{text}'" in str(excinfo.value)


def test_parse_nameservers_from_a_list_or_an_env_string() -> None:
    expected = (Nameserver("127.0.0.1", 5353), Nameserver("::1", 53))
    assert parse_nameservers(["127.0.0.1:5353", "[::1]"]) == expected
    assert parse_nameservers("127.0.0.1:5353, [::1]") == expected
    assert parse_nameservers("127.0.0.1:5353 [::1]") == expected
    with pytest.raises(ConfigError, match="'nope'"):
        parse_nameservers("127.0.0.1, nope")
    with pytest.raises(ConfigError, match="not an address"):
        parse_nameservers([""])


def test_resolver_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"'ns1\.example'"):
        Resolver(["ns1.example"])
    with pytest.raises(ConfigError, match="must be > 0"):
        Resolver(["127.0.0.1"], lifetime=0)
    resolver = Resolver(["127.0.0.1:5353", "2001:db8::53"], timeout=1.0, lifetime=3.0)
    assert resolver.nameservers == ("127.0.0.1:5353", "[2001:db8::53]")
    assert (resolver.timeout, resolver.lifetime) == (1.0, 3.0)


def test_default_is_the_system_resolver() -> None:
    if not Path("/etc/resolv.conf").is_file():
        with pytest.raises(ConfigError, match=r"\[dns\] nameservers"):
            Resolver()
        return
    assert Resolver().nameservers


# -- many at once ------------------------------------------------------------------------------


def test_resolve_many_preserves_input_order(dns_server: DnsServer, resolver: Resolver) -> None:
    ips = [f"192.0.2.{n}" for n in range(1, 201)]
    for n, ip in enumerate(ips, start=1):
        if n % 7:
            dns_server.zone.set_ptr(ip, f"host-{n}.example.net")
    dns_server.zone.slow(0.3, "1.2.0.192.in-addr.arpa")  # the first answer arrives last
    results = resolver.resolve_many("ptr", ips, max_workers=16)
    assert [r.ip for r in results] == ips
    for n, result in enumerate(results, start=1):
        if n % 7:
            assert result.names == (f"host-{n}.example.net",)
        else:
            assert result.status is Status.NXDOMAIN
    assert dns_server.queries_for("1.2.0.192.in-addr.arpa", "PTR") == 1


def test_resolve_many_runs_in_parallel(dns_server: DnsServer, resolver: Resolver) -> None:
    names = [f"d{n}.example" for n in range(16)]
    for name in names:
        dns_server.zone.set_mx(name, [(10, f"mx.{name}")])
    dns_server.zone.slow(0.25)  # sixteen in a row would take 4 s
    started = time.monotonic()
    results = resolver.resolve_many("mx", names, max_workers=16)
    assert time.monotonic() - started < 2.0
    assert [r.hosts for r in results] == [(f"mx.{name}",) for name in names]


def test_resolve_many_other_kinds(dns_server: DnsServer, resolver: Resolver) -> None:
    dns_server.zone.list_ip("192.0.2.2", ZEN)
    listed = resolver.resolve_many("dnsbl", ["192.0.2.1", "192.0.2.2"], zone=ZEN)
    assert [r.listed for r in listed] == [False, True]
    assert resolver.resolve_many("txt", []) == []
    with pytest.raises(ValueError, match="unknown lookup kind"):
        resolver.resolve_many("soa", ["x.example"])  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="needs zone"):
        resolver.resolve_many("dnsbl", ["192.0.2.1"], zone="")
    with pytest.raises(ValueError, match="max_workers"):
        resolver.resolve_many("mx", ["a.example", "b.example"], max_workers=0)


# -- the test server itself ----------------------------------------------------------------------


def test_test_server_answers_over_tcp_and_counts_queries(dns_server: DnsServer) -> None:
    dns_server.zone.set_a("tcp.example", ["192.0.2.77"])
    query = dns.message.make_query("tcp.example", "A")
    response = dns.query.tcp(query, "127.0.0.1", port=dns_server.port, timeout=2)
    assert [rr.address for rr in response.answer[0]] == ["192.0.2.77"]
    assert dns_server.queries == [("tcp.example.", "A", "tcp")]
    assert dns_server.query_count == 1
