"""Source enrichment against real parts: the DNS server on loopback (PTR, forward confirmation,
SERVFAIL, timeouts), a MaxMind database built here, SQLite and PostgreSQL, and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select

from inboxops.cli import root
from inboxops.cli.context import AppContext
from inboxops.config import DnsSettings, Settings
from inboxops.dmarc.enrich import Enricher, base_domain
from inboxops.dns import Status
from inboxops.dns.cache import DnsCache
from inboxops.storage.db import open_database
from inboxops.storage.models import alert_state, dns_cache
from tests.helpers import NOW, aggregate_xml, write_report
from tests.servers.dns import DnsServer

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def settings_for(dns: DnsServer, **dns_overrides: Any) -> Settings:
    return Settings(dns=DnsSettings(nameservers=(dns.nameserver,), **dns_overrides))


def confirmed(dns: DnsServer, ip: str, name: str) -> None:
    """PTR ``ip`` -> ``name`` and ``name`` -> ``ip``: forward-confirmed."""
    dns.zone.set_ptr(ip, name)
    if ":" in ip:
        dns.zone.set_aaaa(name, [ip])
    else:
        dns.zone.set_a(name, [ip])


def cli(args: Sequence[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(root, list(args), env=env, obj=AppContext(clock=lambda: NOW))


def imported(db_url: str, tmp_path: Path, *docs: bytes) -> None:
    for i, doc in enumerate(docs):
        write_report(tmp_path / "in", f"r{i}.xml", doc)
    result = cli(["--db", db_url, "dmarc", "import", "--offline", str(tmp_path / "in")])
    assert result.exit_code == 0, result.output


# -- forward-confirmed reverse DNS through the cache --------------------------------------------


def test_fcrdns_outcomes_and_the_cache(dns_server: DnsServer, engine: Engine) -> None:
    confirmed(dns_server, "192.0.2.1", "mta1.example.com")
    dns_server.zone.set_ptr("192.0.2.2", "mail-ot1-f51.google.com")  # a claim, nothing behind
    dns_server.zone.set_a("mail-ot1-f51.google.com", ["198.51.100.99"])
    dns_server.zone.set_ptr("192.0.2.3", "broken.example.net")
    dns_server.zone.servfail("broken.example.net")
    dns_server.zone.servfail("4.2.0.192.in-addr.arpa")
    confirmed(dns_server, "2001:db8::25", "mx.example.org")
    clock = T0
    cache = DnsCache(engine, dns_server.resolver(), DnsSettings(), clock=lambda: clock)
    ips = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "2001:db8::25"]
    got = cache.fcrdns(ips)
    assert (got["192.0.2.1"].confirmed, got["192.0.2.1"].hostname) == (True, "mta1.example.com")
    assert (got["192.0.2.2"].status, got["192.0.2.2"].confirmed) == (Status.OK, False)
    # the forward lookup failed: "could not check", never "checked and false"
    assert got["192.0.2.3"].status is Status.SERVFAIL
    assert got["192.0.2.4"].status is Status.SERVFAIL  # the PTR lookup itself failed
    assert got["192.0.2.5"].status is Status.NXDOMAIN
    assert got["2001:db8::25"].confirmed is True  # AAAA for IPv6
    asked = dns_server.query_count
    again = cache.fcrdns(ips)
    assert dns_server.query_count == asked  # PTR and A/AAAA answers came from the database
    assert again["192.0.2.1"].confirmed is True
    with engine.connect() as conn:
        kinds = dict(
            conn.execute(
                select(dns_cache.c.rdtype, func.count()).group_by(dns_cache.c.rdtype)
            ).all()
        )
    assert kinds == {"PTR": 6, "A": 3, "AAAA": 1}
    offline = DnsCache(engine, None, DnsSettings()).fcrdns([*ips, "203.0.113.1"], offline=True)
    assert "203.0.113.1" not in offline
    assert offline["192.0.2.1"].confirmed is True


def test_a_timeout_is_a_status_not_a_verdict(dns_server: DnsServer, engine: Engine) -> None:
    dns_server.zone.set_ptr("192.0.2.7", "slow.example.net")
    dns_server.zone.slow(1.0, "slow.example.net")
    resolver = dns_server.resolver(timeout=0.2, lifetime=0.3)
    [result] = DnsCache(engine, resolver, DnsSettings()).fcrdns(["192.0.2.7"]).values()
    assert (result.status, result.confirmed) == (Status.TIMEOUT, False)
    source = Enricher(engine, settings_for(dns_server))._source("192.0.2.7", result)
    assert (source.ptr, source.fcrdns) == ("slow.example.net", None)


def test_a_dead_resolver_is_given_up_on_after_one_round(
    dns_server: DnsServer, sqlite_url: str
) -> None:
    """Every answer held back: enrichment stops after its first round (64 IPs, two waves of
    the pool) and warns, instead of waiting out all 500."""
    dns_server.zone.slow(2.0)
    engine = open_database(sqlite_url)
    enricher = Enricher(engine, settings_for(dns_server, timeout=0.2, lifetime=0.3))
    start = time.perf_counter()
    sources = enricher.sources(f"10.9.{i // 250}.{i % 250}" for i in range(500))
    elapsed = time.perf_counter() - start
    assert len(sources) == 500
    assert all(s.ptr is None and s.fcrdns is None for s in sources.values())
    assert "DNS is not answering" in enricher.warning
    assert enricher.stats.skipped == 500 - 64
    assert dns_server.queries_for("0.9.10.in-addr.arpa") == 0  # nothing asked past round one
    assert elapsed < 5, elapsed
    engine.dispose()


# -- sources: base domain, service, country ------------------------------------------------------


def test_base_domain_uses_the_icann_section() -> None:
    assert base_domain("o1.ptr2913.sendgrid.net") == "sendgrid.net"
    assert base_domain("smtp3.cs.ox.ac.uk.") == "ox.ac.uk"
    assert base_domain("ec2-3-8-1-2.eu-west-2.compute.amazonaws.com") == "amazonaws.com"
    assert base_domain("co.uk") is None
    assert base_domain(None) is None


def write_geoip(path: Path) -> Path:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "NL"}})
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"registered_country": {"iso_code": "US"}})
    writer.insert_network(IPSet(["2001:db8::/32"]), {"country": {"iso_code": "DE"}})
    writer.to_db_file(str(path))
    return path


def test_sources_carry_ptr_service_and_country(
    dns_server: DnsServer, engine: Engine, tmp_path: Path
) -> None:
    confirmed(dns_server, "203.0.113.5", "o1.ptr2913.sendgrid.net")
    dns_server.zone.set_ptr("198.51.100.7", "lists.evil.example")  # unconfirmed claim
    db = write_geoip(tmp_path / "country.mmdb")
    base = settings_for(dns_server)
    settings = Settings(dns=base.dns, dmarc=base.dmarc.__class__(geoip_db=str(db)))
    enricher = Enricher(engine, settings)
    got = enricher.sources(["203.0.113.5", "198.51.100.7", "192.0.2.1", "2001:db8::1"])
    enricher.close()
    assert got["203.0.113.5"].as_json() == {
        "ptr": "o1.ptr2913.sendgrid.net",
        "fcrdns": True,
        "base_domain": "sendgrid.net",
        "service": "Twilio SendGrid",
        "service_type": "esp",
        "country": "NL",
    }
    listed = got["198.51.100.7"]
    assert (listed.service_type, listed.fcrdns, listed.trusted_type) == (
        "mailing_list",
        False,
        None,
    )
    assert listed.country == "US"  # the registered country when no country is given
    assert got["192.0.2.1"].as_json() == dict.fromkeys(got["192.0.2.1"].as_json())  # all null
    assert got["2001:db8::1"].country == "DE"


# -- the CLI: summary, alert, export ---------------------------------------------------------------


def _record(
    ip: str,
    count: int,
    *,
    reasons: Sequence[tuple[str, str]] = (),
    dkim: Sequence[tuple[str, str]] = (("spoofer.example", "fail"),),
    spf: Sequence[tuple[str, str]] = (("spoofer.example", "fail"),),
    ok: bool = False,
) -> str:
    verdict = "pass" if ok else "fail"
    reason = "".join(f"<reason><type>{t}</type><comment>{c}</comment></reason>" for t, c in reasons)
    auth = "".join(
        f"<dkim><domain>{d}</domain><selector>s1</selector><result>{r}</result></dkim>"
        for d, r in dkim
    ) + "".join(f"<spf><domain>{d}</domain><result>{r}</result></spf>" for d, r in spf)
    return (
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>"
        f"<disposition>none</disposition><dkim>{verdict}</dkim><spf>{verdict}</spf>{reason}"
        f"</policy_evaluated></row><identifiers><header_from>example.com</header_from>"
        f"</identifiers><auth_results>{auth}</auth_results></record>"
    )


def crafted(report_id: str, records: Sequence[str], org: str = "google.com") -> bytes:
    """One aggregate report about example.com (p=none) with these records."""
    template = aggregate_xml(org=org, report_id=report_id, rows=[("192.0.2.250", 1, True)])
    head, _, _ = template.partition(b"<record>")
    return head + "".join(records).encode() + b"</feedback>"


# One IP per path of the classification (see docs/dmarc-alert.md#forwarding-or-spoofing)
SPOOFER = "203.0.113.5"  # no evidence at all; PTR claims a host it cannot confirm
REASON_FWD = "198.51.100.20"  # the receiver says "forwarded"
ARC = "198.51.100.30"  # local_policy with an ARC note
DKIM_OURS = "198.51.100.40"  # our DKIM signature broken in transit, SPF names the relay
LIST = "198.51.100.50"  # a list server whose PTR is forward-confirmed
FAKE_LIST = "198.51.100.60"  # claims to be a list server, not confirmed: still a spoofer
OUR_RELAY = "198.51.100.70"  # [[dmarc.services]] type "ours", confirmed: judged as own


def seed_paths(dns: DnsServer, db_url: str, tmp_path: Path) -> None:
    dns.zone.set_ptr(SPOOFER, "mail-ot1-f51.google.com")
    dns.zone.set_a("mail-ot1-f51.google.com", ["198.51.100.99"])
    confirmed(dns, REASON_FWD, "fwd.alumni.example.net")
    confirmed(dns, LIST, "lists.example.org")
    dns.zone.set_ptr(FAKE_LIST, "lists.evil.example")
    confirmed(dns, OUR_RELAY, "mta.example.com")
    records = [
        _record(SPOOFER, 30),
        _record(REASON_FWD, 40, reasons=[("forwarded", "")]),
        _record(ARC, 25, reasons=[("local_policy", "arc=pass as.1.google.com")]),
        _record(DKIM_OURS, 50, dkim=[("example.com", "fail")], spf=[("univ.example.edu", "pass")]),
        _record(LIST, 30),
        _record(FAKE_LIST, 30),
        _record(OUR_RELAY, 30),
        _record(OUR_RELAY, 70, ok=True, dkim=[("example.com", "pass")], spf=[]),
    ]
    imported(db_url, tmp_path, crafted("paths", records))


def config(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "inboxops.toml"
    path.write_text(
        '[[dmarc.services]]\nname = "Our relay"\ntype = "ours"\npatterns = ["mta.example.com"]\n'
        + extra
    )
    return str(path)


def test_summary_json_carries_sources_and_classification(
    dns_server: DnsServer, db_url: str, tmp_path: Path
) -> None:
    seed_paths(dns_server, db_url, tmp_path)
    base = ["--config", config(tmp_path), "--db", db_url, "dmarc", "summary", "--json"]
    result = cli(base)
    assert result.exit_code == 0, result.output
    rows = {r["ip"]: r for r in json.loads(result.stdout)}
    for row in rows.values():
        assert {"ptr", "fcrdns", "base_domain", "service", "service_type", "country"} <= set(row)
    assert {ip: r["classification"] for ip, r in rows.items()} == {
        SPOOFER: "spoofing",
        REASON_FWD: "forwarded",
        ARC: "forwarded",
        DKIM_OURS: "forwarded",
        LIST: "forwarded",
        FAKE_LIST: "spoofing",
        OUR_RELAY: "own",
    }
    assert rows[DKIM_OURS]["evidence"] == ["dkim_ours_spf_other"]
    assert rows[ARC]["evidence"] == ["local_policy_arc"]
    assert rows[LIST]["evidence"] == ["service_mailing_list"]
    assert rows[LIST]["forwarded_failed"] == 0
    assert (rows[SPOOFER]["ptr"], rows[SPOOFER]["fcrdns"]) == ("mail-ot1-f51.google.com", False)
    assert rows[SPOOFER]["service"] == "Google (Gmail / Workspace)"  # claimed, not trusted
    assert (rows[ARC]["ptr"], rows[ARC]["fcrdns"]) == (None, None)
    assert rows[OUR_RELAY]["own"] is True

    asked = dns_server.query_count
    table = cli(base[:-1])  # the table, from the cache
    assert dns_server.query_count == asked
    assert "lists.example.org (Mailing list" in table.stdout
    assert "mail-ot1-f51.google.com?" in table.stdout  # unconfirmed
    assert "forwarded" in table.stdout
    assert "spoofing" in table.stdout

    by_service = json.loads(cli([*base, "--by", "service"]).stdout)
    named = {r["service"]: r for r in by_service}
    assert named["Mailing list server"]["ips"] == 2
    assert named["Mailing list server"]["confirmed_ips"] == 1
    assert named[None]["ips"] == 3  # no PTR, or a PTR no service claims
    assert sum(r["messages"] for r in by_service) == sum(r["messages"] for r in rows.values())


def test_offline_makes_no_lookups(dns_server: DnsServer, db_url: str, tmp_path: Path) -> None:
    seed_paths(dns_server, db_url, tmp_path)
    for args in (
        ["dmarc", "summary", "--json", "--offline"],
        ["dmarc", "summary", "--by", "service", "--offline"],
        ["dmarc", "alert", "--json", "--offline", "--dry-run"],
        ["dmarc", "export", "--offline"],
    ):
        result = cli(["--db", db_url, *args])
        assert result.exit_code in (0, 3), result.output
    assert dns_server.query_count == 0
    rows = json.loads(cli(["--db", db_url, "dmarc", "summary", "--json", "--offline"]).stdout)
    assert all(r["ptr"] is None for r in rows)


def test_alerts_by_classification_loud_and_digest(
    dns_server: DnsServer, db_url: str, tmp_path: Path, telegram_server: Any
) -> None:
    seed_paths(dns_server, db_url, tmp_path)
    env = telegram_server.env()

    def alert(*extra: str, now: datetime = NOW, cfg: str = "") -> tuple[int, list[Any]]:
        path = config(tmp_path, cfg)
        result = CliRunner().invoke(
            root,
            ["--config", path, "--db", db_url, "dmarc", "alert", "--json", *extra],
            env=env,
            obj=AppContext(clock=lambda: now),
        )
        assert result.exit_code in (0, 3), result.output
        return result.exit_code, json.loads(result.stdout)

    code, alerts = alert()
    assert code == 3
    got = {(a["ip"], a["kind"], a["classification"], a.get("digest", False)) for a in alerts}
    assert got == {
        (OUR_RELAY, "own_ip_failing", "own", False),  # 70% pass, judged as our own
        (SPOOFER, "spoofing", "spoofing", False),
        (FAKE_LIST, "spoofing", "spoofing", False),
        (DKIM_OURS, "forwarding", "forwarded", True),
        (REASON_FWD, "forwarding", "forwarded", True),
        (ARC, "forwarding", "forwarded", True),
        (LIST, "forwarding", "forwarded", True),
    }
    *loud_parts, digest = telegram_server.messages  # a long message arrives in parts
    loud = "\n".join(loud_parts)
    assert "Spoofing from 203.0.113.5 [PTR mail-ot1-f51.google.com (not forward-confirmed)" in loud
    assert "lists.evil.example (not forward-confirmed), service Mailing list server" in loud
    assert "Own IP 198.51.100.70 [PTR mta.example.com, service Our relay (ours)]" in loud
    for ip in (REASON_FWD, ARC, DKIM_OURS, LIST):
        assert ip not in loud
        assert ip in digest
    assert "DMARC forwarding digest, 4 relays" in digest
    assert "PTR lists.example.org, service Mailing list server (mailing_list)" in digest
    assert "our DKIM signature with another domain's SPF" in digest

    # 25 hours on: the loud alerts are due again, the weekly digest is not
    sent = len(telegram_server.messages)
    alert(now=NOW.replace(day=25, hour=13))
    again = telegram_server.messages[sent:]
    assert again
    assert SPOOFER in "\n".join(again)
    assert "forwarding digest" not in "\n".join(again)


@pytest.mark.parametrize("mode", ["alert", "off"])
def test_forwarding_mode_alert_or_off(
    dns_server: DnsServer, sqlite_url: str, tmp_path: Path, telegram_server: Any, mode: str
) -> None:
    seed_paths(dns_server, sqlite_url, tmp_path)
    path = config(tmp_path, f'[dmarc.alerts]\nforwarding = "{mode}"\n')
    result = CliRunner().invoke(
        root,
        ["--config", path, "--db", sqlite_url, "dmarc", "alert", "--json"],
        env=telegram_server.env(),
        obj=AppContext(clock=lambda: NOW),
    )
    assert result.exit_code == 3
    kinds = [a["kind"] for a in json.loads(result.stdout)]
    sent = "\n".join(telegram_server.messages)  # a long message arrives in parts
    assert "forwarding digest" not in sent
    assert SPOOFER in sent
    if mode == "alert":
        assert kinds.count("forwarding") == 4
        assert f"Forwarded mail from {LIST}" in sent
    else:
        assert "forwarding" not in kinds
        assert LIST not in sent


def test_turning_forwarding_off_forgets_what_the_digest_said(
    dns_server: DnsServer, sqlite_url: str, tmp_path: Path, telegram_server: Any
) -> None:
    """``forwarding = "off"`` stops tracking the relays: turned back on weeks later, the digest
    does not announce "resolved" for relays it was told to stop watching."""
    seed_paths(dns_server, sqlite_url, tmp_path)

    def alert(mode: str, now: datetime, *extra: str) -> None:
        path = config(tmp_path, f'[dmarc.alerts]\nforwarding = "{mode}"\n')
        result = CliRunner().invoke(
            root,
            ["--config", path, "--db", sqlite_url, "dmarc", "alert", "--json", *extra],
            env=telegram_server.env(),
            obj=AppContext(clock=lambda: now),
        )
        assert result.exit_code in (0, 3), result.output

    def remembered() -> int:
        engine = open_database(sqlite_url)
        try:
            with engine.connect() as conn:
                kind = alert_state.c.kind
                return int(conn.scalar(select(func.count()).where(kind == "forwarding")) or 0)
        finally:
            engine.dispose()

    alert("digest", NOW)
    assert "forwarding digest" in telegram_server.messages[-1]
    assert remembered() == 4
    alert("off", NOW.replace(day=25), "--dry-run")  # a dry run changes nothing
    assert remembered() == 4
    alert("off", NOW.replace(day=25))
    assert remembered() == 0
    sent = len(telegram_server.messages)
    alert("digest", NOW.replace(month=12, day=20))  # the relays are long gone from the window
    later = "\n".join(telegram_server.messages[sent:])
    for relay in (LIST, ARC, DKIM_OURS, REASON_FWD):
        assert relay not in later


def test_only_forwarding_exits_0(dns_server: DnsServer, sqlite_url: str, tmp_path: Path) -> None:
    imported(
        sqlite_url, tmp_path, crafted("f", [_record(REASON_FWD, 40, reasons=[("forwarded", "")])])
    )
    result = cli(["--db", sqlite_url, "dmarc", "alert", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "forwarding digest" in result.stdout
    assert "no DMARC alerts" in result.stdout


def test_export_rows_carry_the_enrichment(
    dns_server: DnsServer, db_url: str, tmp_path: Path
) -> None:
    seed_paths(dns_server, db_url, tmp_path)
    result = cli(["--db", db_url, "dmarc", "export", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    [listed] = [r for r in rows if r["source_ip"] == LIST]
    assert (listed["ptr"], listed["fcrdns"], listed["service_type"]) == (
        "lists.example.org",
        True,
        "mailing_list",
    )
    assert listed["base_domain"] == "example.org"
    [spoofer] = [r for r in rows if r["source_ip"] == SPOOFER]
    assert spoofer["fcrdns"] is False
    assert spoofer["country"] is None


def test_geoip_in_summary_and_a_missing_database(
    dns_server: DnsServer, sqlite_url: str, tmp_path: Path
) -> None:
    seed_paths(dns_server, sqlite_url, tmp_path)
    db = write_geoip(tmp_path / "country.mmdb")
    args = ["--db", sqlite_url, "dmarc", "summary", "--json", "--offline"]
    rows = json.loads(cli(args, env={"INBOXOPS_GEOIP_DB": str(db)}).stdout)
    countries = {r["ip"]: r["country"] for r in rows}
    assert countries[SPOOFER] == "NL"  # a local file: offline too
    assert countries[LIST] == "US"
    missing = cli(args, env={"INBOXOPS_GEOIP_DB": str(tmp_path / "nope.mmdb")})
    assert missing.exit_code == 2
    assert "geoip_db" in missing.stderr
    assert "does not exist" in missing.stderr


def test_the_shared_corpus_names_google_and_amazon_ses(
    dns_server: DnsServer, db_url: str, corpus: Path
) -> None:
    confirmed(dns_server, "209.85.220.41", "mail-sor-f41.google.com")
    confirmed(dns_server, "2607:f8b0:4864:20::132", "mail-qt1-x132.google.com")
    confirmed(dns_server, "54.240.48.110", "a48-110.smtp-out.amazonses.com")
    report = corpus / "extract_report" / "nice-input.xml"
    assert cli(["--db", db_url, "dmarc", "import", str(report)]).exit_code == 0
    window = ["--since", "2000-01-01"]
    rows = {
        r["ip"]: r
        for r in json.loads(cli(["--db", db_url, "dmarc", "summary", "--json", *window]).stdout)
    }
    assert rows["2607:f8b0:4864:20::132"]["service"] == "Google (Gmail / Workspace)"
    assert rows["2607:f8b0:4864:20::132"]["fcrdns"] is True
    assert rows["54.240.48.110"]["base_domain"] == "amazonses.com"
    assert rows["54.240.48.92"]["ptr"] is None  # nothing in the zone: NXDOMAIN
    services = json.loads(
        cli(["--db", db_url, "dmarc", "summary", "--by", "service", "--json", *window]).stdout
    )
    assert {r["service"] for r in services} == {
        "Google (Gmail / Workspace)",
        "Amazon SES",
        None,
    }


def test_backfill_asks_each_name_once_and_runs_concurrently(
    dns_server: DnsServer, sqlite_url: str, tmp_path: Path
) -> None:
    """2,000 new IPs, each with a confirmed PTR: one PTR and one A query each, answered by a
    pool (bench/dmarc/enrich.py measures 10,000); a second run asks nothing."""
    ips = [f"10.20.{i // 250}.{i % 250 + 1}" for i in range(2000)]
    for n, ip in enumerate(ips):
        confirmed(dns_server, ip, f"o{n}.ptr.sendgrid.net")
    rows = [(ip, 1, False) for ip in ips]
    imported(sqlite_url, tmp_path, aggregate_xml(report_id="big", rows=rows))
    start = time.perf_counter()
    result = cli(["--db", sqlite_url, "dmarc", "summary", "--by", "service", "--json"])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    [sendgrid] = json.loads(result.stdout)
    assert (sendgrid["service"], sendgrid["ips"], sendgrid["confirmed_ips"]) == (
        "Twilio SendGrid",
        2000,
        2000,
    )
    ptr_queries = sum(1 for q in dns_server.queries if q[1] == "PTR")
    a_queries = sum(1 for q in dns_server.queries if q[1] == "A")
    assert (ptr_queries, a_queries) == (2000, 2000)
    assert elapsed < 60, elapsed
    before = dns_server.query_count
    cli(["--db", sqlite_url, "dmarc", "summary", "--json"])
    assert dns_server.query_count == before


def test_a_read_only_database_role_still_gets_an_enriched_summary(
    dns_server: DnsServer, pg_url: str, tmp_path: Path
) -> None:
    """A dashboard or analyst often connects with a SELECT-only role: the summary's lookups
    cannot be cached, but the answers are in hand, so the summary is whole and says so once."""
    import uuid

    from sqlalchemy import create_engine, make_url, text

    seed_paths(dns_server, pg_url, tmp_path)
    schema = pg_url.rsplit("%3D", 1)[1]
    role = f"ro_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        conn.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'))
    try:
        read_only = make_url(pg_url).set(username=role).render_as_string(hide_password=False)
        result = CliRunner().invoke(
            root,
            ["--db", read_only, "-v", "dmarc", "summary", "--json"],
            obj=AppContext(clock=lambda: NOW),
        )
        assert result.exit_code == 0, result.output
        rows = {r["ip"]: r for r in json.loads(result.stdout)}
        assert rows[LIST]["ptr"] == "lists.example.org"
        assert rows[LIST]["fcrdns"] is True
        assert result.stderr.count("event=dns_cache_not_written") == 1
        assert "permission denied" in result.stderr
        with admin.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM dns_cache")).scalar() == 0
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_seeding_the_cache_fails_loudly_when_it_cannot_write(
    engine: Engine, dns_server: DnsServer
) -> None:
    """`inboxops mx import` exists to write: there a refused write is the command's failure."""
    from inboxops.dns.resolve import MxResult
    from inboxops.errors import StorageError

    cache = DnsCache(engine, None, DnsSettings())
    with engine.begin() as conn:
        dns_cache.drop(conn)
    with pytest.raises(StorageError):
        cache.store_mx([MxResult("example.org", Status.OK, (), 300)], ttl=300)
