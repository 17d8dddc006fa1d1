"""Domains -> operators through the DNS cache and MX history, on a real DNS server on loopback.

The commands are run as a user runs them (`inboxops mx ...` with INBOXOPS_DNS_NAMESERVERS
pointing at the test server), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from inboxops.cli import root
from inboxops.cli.context import AppContext
from inboxops.config import DnsSettings
from inboxops.dns.cache import DnsCache
from inboxops.operators.classify import Classifier
from inboxops.operators.domains import DomainClassifier, history_changes
from inboxops.storage.db import open_database
from tests.servers.dns import DnsServer

T0 = datetime(2024, 9, 30, 12, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def mx_cli(args: list[str], dns: DnsServer, db: str, clock: Clock) -> tuple[int, object]:
    env = {"INBOXOPS_DNS_NAMESERVERS": dns.nameserver}
    result = CliRunner().invoke(
        root, ["--db", db, "mx", *args], env=env, obj=AppContext(clock=clock)
    )
    try:
        return result.exit_code, json.loads(result.stdout)
    except ValueError:
        return result.exit_code, result.output


def test_classify_caches_with_ttl_and_offline_uses_the_cache(
    dns_server: DnsServer, db_url: str
) -> None:
    dns_server.zone.set_mx(
        "example.com", [(10, "example-com.mail.protection.outlook.com")], ttl=600
    )
    dns_server.zone.set_mx(
        "gmail.com", [(5, "gmail-smtp-in.l.google.com"), (10, "alt1.gmail-smtp-in.l.google.com")]
    )
    clock = Clock(T0)
    code, rows = mx_cli(
        ["classify", "example.com", "GMAIL.com.", "--json"], dns_server, db_url, clock
    )
    assert code == 0
    by = {r["domain"]: r for r in rows}  # type: ignore[union-attr]
    assert (by["example.com"]["operator"], by["example.com"]["segment"]) == ("microsoft", "365")
    assert (by["gmail.com"]["operator"], by["gmail.com"]["segment"]) == ("google", "consumer")
    assert by["gmail.com"]["mx_host"] == "gmail-smtp-in.l.google.com"
    assert dns_server.query_count == 2
    clock.now = T0 + timedelta(seconds=299)  # within min_ttl (300 s): from the cache
    code, rows = mx_cli(
        ["classify", "example.com", "gmail.com", "--json"], dns_server, db_url, clock
    )
    assert dns_server.query_count == 2
    assert {r["source"] for r in rows} == {"cache"}  # type: ignore[union-attr]
    clock.now = T0 + timedelta(seconds=601)  # example.com's TTL (600) has run out, not gmail's
    mx_cli(["classify", "example.com", "gmail.com", "--json"], dns_server, db_url, clock)
    assert dns_server.queries_for("example.com", "MX") == 2
    assert dns_server.queries_for("gmail.com", "MX") == 2  # 300 s default TTL also ran out
    clock.now = T0 + timedelta(days=30)  # long stale, but --offline never asks
    code, rows = mx_cli(
        ["classify", "example.com", "new.example", "--offline", "--json"], dns_server, db_url, clock
    )
    assert dns_server.query_count == 4
    by = {r["domain"]: r for r in rows}  # type: ignore[union-attr]
    assert by["example.com"]["operator"] == "microsoft"
    assert (by["new.example"]["operator"], by["new.example"]["status"]) == ("unknown", "not_cached")


def test_a_domain_that_moves_between_runs_is_a_change(dns_server: DnsServer, db_url: str) -> None:
    clock = Clock(T0)
    dns_server.zone.set_mx("cox.net", [(10, "cxr.mx.a.cloudfilter.net")])
    dns_server.zone.set_mx("stable.example", [(10, "aspmx.l.google.com")])
    mx_cli(["classify", "cox.net", "stable.example"], dns_server, db_url, clock)
    clock.now = T0 + timedelta(days=2)
    dns_server.zone.set_mx("cox.net", [(1, "mx-eu.mail.am0.yahoodns.net")])
    code, rows = mx_cli(
        ["classify", "--refresh", "cox.net", "stable.example", "--json"], dns_server, db_url, clock
    )
    assert {r["domain"]: r["operator"] for r in rows} == {
        "cox.net": "yahoo",
        "stable.example": "google",
    }  # type: ignore[union-attr]
    code, changes = mx_cli(
        ["changes", "--since", "2024-10-01", "--json"], dns_server, db_url, clock
    )
    assert code == 0
    assert [(c["domain"], c["old_operator"], c["new_operator"], c["moved"]) for c in changes] == [  # type: ignore[union-attr]
        ("cox.net", "cox", "yahoo", True)
    ]
    code, changes = mx_cli(
        ["changes", "--since", "2024-10-03", "--json"], dns_server, db_url, clock
    )
    assert changes == []


def test_failures_are_not_moves_and_null_mx_is_reported(dns_server: DnsServer, db_url: str) -> None:
    clock = Clock(T0)
    for d in ("flaky.example", "gone.example", "nomail.example"):
        dns_server.zone.set_mx(d, [(10, "aspmx.l.google.com")])
    mx_cli(
        ["classify", "flaky.example", "gone.example", "nomail.example"], dns_server, db_url, clock
    )
    clock.now = T0 + timedelta(days=1)
    dns_server.zone.servfail("flaky.example")
    dns_server.zone.delete("gone.example")
    dns_server.zone.set_null_mx("nomail.example")
    _, rows = mx_cli(
        ["classify", "--refresh", "flaky.example", "gone.example", "nomail.example", "--json"],
        dns_server,
        db_url,
        clock,
    )
    status = {r["domain"]: (r["status"], r["operator"]) for r in rows}  # type: ignore[union-attr]
    assert status == {
        "flaky.example": ("servfail", "unknown"),
        "gone.example": ("nxdomain", "unknown"),
        "nomail.example": ("null_mx", "unknown"),
    }
    _, changes = mx_cli(
        ["changes", "--since", "2024-09-30T13:00:00Z", "--json"], dns_server, db_url, clock
    )
    listed = {c["domain"]: c for c in changes}  # type: ignore[union-attr]
    assert "flaky.example" not in listed  # a failure is never a change
    assert listed["gone.example"]["new_status"] == "nxdomain"
    assert listed["nomail.example"]["new_status"] == "null_mx"
    assert not any(c["moved"] for c in changes)  # type: ignore[union-attr]
    _code, moves = mx_cli(
        ["changes", "--since", "2024-09-30T13:00:00Z", "--moves-only", "--json"],
        dns_server,
        db_url,
        clock,
    )
    assert moves == []


def test_import_seeds_the_cache_in_preference_order(
    dns_server: DnsServer, db_url: str, tmp_path: Path
) -> None:
    seed = tmp_path / "mx.csv"
    seed.write_text(
        "domain,mx_host\n"
        "acme.example,mx1.acme-mail.example\n"
        "acme.example,mx0a-001.pphosted.com\n"
        "# a comment\n"
        "shop.example,aspmx.l.google.com\n"
        "broken row without comma\n"
        "shop.example,alt1.aspmx.l.google.com\n"
    )
    clock = Clock(T0)
    code, counts = mx_cli(["import", str(seed), "--json"], dns_server, db_url, clock)
    assert code == 3  # one bad row, reported
    assert counts == {"domains": 2, "rows": 4, "bad_rows": [counts["bad_rows"][0]]}  # type: ignore[index]
    code, rows = mx_cli(
        ["classify", "acme.example", "shop.example", "--json"], dns_server, db_url, clock
    )
    assert dns_server.query_count == 0  # answered from the seeded cache
    by = {r["domain"]: r for r in rows}  # type: ignore[union-attr]
    assert by["acme.example"]["operator"] == "other"  # the first row decides: mx1.acme-mail
    assert (by["shop.example"]["operator"], by["shop.example"]["segment"]) == (
        "google",
        "workspace",
    )


def test_user_rules_from_config_win(dns_server: DnsServer, db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[operators.rules]\n"acme" = ["mx.acme-mail.example"]\n')
    dns_server.zone.set_mx("acme.example", [(10, "mx.acme-mail.example")])
    env = {"INBOXOPS_DNS_NAMESERVERS": dns_server.nameserver}
    result = CliRunner().invoke(
        root,
        ["--config", str(config), "--db", db_url, "mx", "classify", "acme.example", "--json"],
        env=env,
    )
    assert json.loads(result.stdout)[0]["operator"] == "acme"


def test_cache_serves_many_domains_with_bounded_lookups(
    dns_server: DnsServer, sqlite_url: str
) -> None:
    """The API every capability uses: one call, many domains, each looked up once."""
    engine = open_database(sqlite_url)
    for i in range(300):
        dns_server.zone.set_mx(f"d{i}.example", [(10, "mx01.mail.icloud.com")])
    cache = DnsCache(engine, dns_server.resolver(), DnsSettings(), clock=Clock(T0))
    domains = DomainClassifier(engine, cache, Classifier(), clock=Clock(T0))
    out = domains.classify([f"d{i}.example" for i in range(300)] * 2)
    assert {r.operator for r in out.values()} == {"apple"}
    assert dns_server.query_count == 300
    assert len(history_changes(engine, T0 - timedelta(days=1))) == 0  # first sighting: no change
    engine.dispose()
