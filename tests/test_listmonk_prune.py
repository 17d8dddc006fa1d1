"""`inboxops listmonk prune` against a listmonk double and a real DNS server on loopback: a
domain whose MX moves between two runs, a null MX, NXDOMAIN and SERVFAIL; the removals log on
SQLite and PostgreSQL. Prune may only ever unsubscribe from the matching lists, and only for
an MX now at an excluded operator."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from inboxops.config import load_settings
from inboxops.hygiene.exclusions import Exclusions, parse_rule
from inboxops.hygiene.prune import Pruner
from inboxops.hygiene.store import removals
from inboxops.operators.domains import domain_classifier
from inboxops.storage.db import open_database
from tests.hygiene_support import (
    LISTS_ACTION,
    T0,
    Clock,
    mutations,
    no_sleep_client,
    run,
    sent_ids,
    statuses,
    write_config,
)
from tests.servers.dns import DnsServer
from tests.servers.listmonk import SQL_QUERY, ListmonkDouble

MakeServer = Callable[..., ListmonkDouble]
COX = [(10, "cxr.mx.a.cloudfilter.net")]
WORKSPACE = [(1, "aspmx.l.google.com"), (5, "alt1.aspmx.l.google.com")]


def memberships(double: ListmonkDouble) -> dict[tuple[str, int], str]:
    rows = double.sql(
        "SELECT s.email, sl.list_id, sl.status FROM subscriber_lists sl "
        "JOIN subscribers s ON s.id = sl.subscriber_id"
    )
    return {(str(e), int(lst)): str(st) for e, lst, st in rows}


@pytest.fixture
def world(listmonk_server: ListmonkDouble, dns_server: DnsServer) -> dict[str, int]:
    """Lists, subscribers and MX answers as of the first run; returns the list ids."""
    zone = dns_server.zone
    zone.set_mx("moved.example", COX)  # moves to Google Workspace before the second run
    zone.set_mx("always.example", [(5, "gmail-smtp-in.l.google.com")])
    zone.set_mx("stay.example", [(1, "mta5.am0.yahoodns.net")])
    zone.set_mx("flaky.example", [(0, "flaky-example.mail.protection.outlook.com")])
    zone.set_mx("icloud.com", [(10, "mx01.mail.icloud.com")])
    zone.set_null_mx("nullmx.example")
    zone.servfail("broken.example")  # gone.example is not in the zone: NXDOMAIN
    d = listmonk_server
    lists = {
        "warmup-a": d.add_list("warmup-a"),
        "Warmup-B": d.add_list("Warmup-B"),
        "news": d.add_list("Newsletter"),
    }
    a, b, news = lists["warmup-a"], lists["Warmup-B"], lists["news"]
    d.add_subscriber("m1@moved.example", lists=[a, news])
    d.add_subscriber("m2@moved.example", lists=[a, b])
    d.add_subscriber("m3@moved.example", lists=[news])  # other lists are never touched
    d.add_subscriber("m4@moved.example", lists={a: "unsubscribed"})  # already off
    d.add_subscriber("a1@always.example", lists=[b])
    d.add_subscriber("s1@stay.example", lists=[a])
    d.add_subscriber("d1@stay.example", status="disabled", lists=[a])
    d.add_subscriber("i1@icloud.com", lists=[a])  # on the exclusion list: not prune's business
    for email in ("n1@nullmx.example", "g1@gone.example", "b1@broken.example", "f1@flaky.example"):
        d.add_subscriber(email, lists=[a])
    return lists


def prune(
    args: list[str], config: Path, db: str, dns: DnsServer, clock: Clock
) -> tuple[int, dict[str, object], str]:
    code, out, err = run(
        ["listmonk", "prune", "--lists", "warmup-*", "--exclude-operator", "google", *args],
        config=config,
        db=db,
        nameserver=dns.nameserver,
        clock=clock,
    )
    return code, out, err


def test_prune_removes_only_moves_to_an_excluded_operator_from_the_matching_lists(
    listmonk_server: ListmonkDouble,
    dns_server: DnsServer,
    world: dict[str, int],
    tmp_path: Path,
    db_url: str,
) -> None:
    double = listmonk_server
    a, b, news = world["warmup-a"], world["Warmup-B"], world["news"]
    config = write_config(tmp_path / "c.toml", [double], rules=["icloud.com"])
    clock = Clock(T0)
    before_status = statuses(double)

    # run 1: always.example has been at Google since its first lookup
    code, out, _ = prune(["--json"], config, db_url, dns_server, clock)
    assert code == 0, out
    report = out["instances"]["main"]  # type: ignore[index]
    assert report["lists"] == [{"id": a, "name": "warmup-a"}, {"id": b, "name": "Warmup-B"}]
    assert report["scanned"] == 10  # m3 (other list only) and m4 (unsubscribed) are not read
    assert report["removals"] == [
        {
            "subscriber_id": report["removals"][0]["subscriber_id"],
            "email": "a1@always.example",
            "domain": "always.example",
            "list_id": b,
            "list": "Warmup-B",
            "old_operator": None,
            "new_operator": "google/consumer",
            "mx_host": "gmail-smtp-in.l.google.com",
        }
    ]
    assert {(f["domain"], f["status"]) for f in report["lookup_failures"]} == {
        ("nullmx.example", "null_mx"),
        ("gone.example", "nxdomain"),
        ("broken.example", "servfail"),
    }
    after_one = memberships(double)

    # between the runs: moved.example moves to Google, flaky.example starts failing
    dns_server.zone.set_mx("moved.example", WORKSPACE)
    dns_server.zone.delete("flaky.example")
    dns_server.zone.servfail("flaky.example")
    clock.now = T0 + timedelta(seconds=60)  # every answer is still fresh in the cache

    code, out, _ = prune(["--dry-run", "--json"], config, db_url, dns_server, clock)
    assert out["instances"]["main"]["matched"] == 0  # type: ignore[index]  # cached: no move yet

    requests_before = len(double.requests)
    code, out, _ = prune(["--dry-run", "--refresh", "--json"], config, db_url, dns_server, clock)
    assert code == 0
    report = out["instances"]["main"]  # type: ignore[index]
    assert (report["matched"], report["removed"]) == (3, 0)
    assert mutations(double) == [LISTS_ACTION]  # run 1's only
    assert len(double.requests) > requests_before
    assert memberships(double) == after_one

    code, out, _ = prune(["--refresh", "--json"], config, db_url, dns_server, clock)
    assert code == 0
    report = out["instances"]["main"]  # type: ignore[index]
    assert (report["matched"], report["removed"]) == (3, 3)
    assert report["by_operator"] == {"operator:google": 3}
    assert sorted((r["email"], r["list"], r["old_operator"]) for r in report["removals"]) == [
        ("m1@moved.example", "warmup-a", "cox"),
        ("m2@moved.example", "Warmup-B", "cox"),
        ("m2@moved.example", "warmup-a", "cox"),
    ]
    assert {r["new_operator"] for r in report["removals"]} == {"google/workspace"}
    assert {r["mx_host"] for r in report["removals"]} == {"aspmx.l.google.com"}
    assert ("flaky.example", "servfail") in {
        (f["domain"], f["status"]) for f in report["lookup_failures"]
    }

    # exactly these subscriptions changed, each to "unsubscribed"; nobody was blocklisted
    expected = dict(after_one)
    expected.update(
        {("m1@moved.example", a): "unsubscribed", ("m2@moved.example", a): "unsubscribed"}
    )
    expected[("m2@moved.example", b)] = "unsubscribed"
    assert memberships(double) == expected
    assert expected[("m1@moved.example", news)] == "confirmed"
    assert expected[("m3@moved.example", news)] == "confirmed"
    assert statuses(double) == before_status
    assert {r.endpoint for r in double.requests if r.method != "GET"} == {LISTS_ACTION}
    for request in double.requests_to(LISTS_ACTION):
        assert request.body["action"] == "unsubscribe"
        assert set(request.body["target_list_ids"]) <= {a, b}

    engine = open_database(db_url)
    try:
        logged = removals(engine)
    finally:
        engine.dispose()
    assert [
        (r.email, r.list_name, r.old_operator, r.new_operator, r.mx_host, r.action, r.reason)
        for r in logged
    ] == [
        (
            "a1@always.example",
            "Warmup-B",
            None,
            "google/consumer",
            "gmail-smtp-in.l.google.com",
            "unsubscribe",
            "mx_operator",
        ),
        *[
            (
                email,
                lst,
                "cox",
                "google/workspace",
                "aspmx.l.google.com",
                "unsubscribe",
                "mx_operator",
            )
            for email, lst in (
                ("m1@moved.example", "warmup-a"),
                ("m2@moved.example", "warmup-a"),
                ("m2@moved.example", "Warmup-B"),
            )
        ],
    ]
    assert logged[0].at == T0
    assert logged[1].at == clock.now
    code, table, _ = run(
        ["listmonk", "removals", "--address", "moved.example"],
        config=config,
        db=db_url,
        clock=Clock(clock.now + timedelta(hours=1)),
        env={"COLUMNS": "200"},
    )
    assert code == 0
    assert table.count("MX moved cox -> google/workspace (aspmx.l.google.com)") == 3
    assert "warmup-a" in table

    # and again: nothing left
    code, out, _ = prune(["--refresh", "--json"], config, db_url, dns_server, clock)
    assert out["instances"]["main"]["matched"] == 0  # type: ignore[index]
    assert double.count(LISTS_ACTION) == 3  # run 1 (one list) + run 2 (two lists)


def test_a_failure_is_never_a_move(
    listmonk_server: ListmonkDouble, dns_server: DnsServer, tmp_path: Path, sqlite_url: str
) -> None:
    """Domains that were at Google and now fail to answer in every way stay on the list."""
    double = listmonk_server
    warm = double.add_list("warmup-x")
    domains = ("to-nxdomain.example", "to-nullmx.example", "to-servfail.example")
    for domain in domains:
        dns_server.zone.set_mx(domain, [(10, "aspmx.l.google.com")])
        double.add_subscriber(f"x@{domain}", lists=[warm])
    config = write_config(tmp_path / "c.toml", [double])
    clock = Clock(T0)
    # seen at Google first, while only microsoft is excluded: nobody goes ...
    code, out, _ = run(
        ["listmonk", "prune", "--lists", "warmup-*", "--exclude-operator", "microsoft", "--json"],
        config=config,
        db=sqlite_url,
        nameserver=dns_server.nameserver,
        clock=clock,
    )
    assert code == 0
    assert out["instances"]["main"]["matched"] == 0
    # ... then every lookup fails, now that google is excluded and the history says google
    dns_server.zone.delete("to-nxdomain.example")
    dns_server.zone.set_null_mx("to-nullmx.example")
    dns_server.zone.servfail("to-servfail.example")
    clock.now = T0 + timedelta(days=8)
    code, out, _ = prune(["--refresh", "--json"], config, sqlite_url, dns_server, clock)
    assert code == 0
    report = out["instances"]["main"]  # type: ignore[index]
    assert report["matched"] == report["removed"] == 0
    assert sorted((f["domain"], f["status"]) for f in report["lookup_failures"]) == [
        ("to-nullmx.example", "null_mx"),
        ("to-nxdomain.example", "nxdomain"),
        ("to-servfail.example", "servfail"),
    ]
    assert mutations(double) == []
    assert set(memberships(double).values()) == {"confirmed"}


@pytest.mark.parametrize("version", ["v6.2.0", "v5.1.0-no-sql-query"])
def test_503_beyond_the_retries_then_the_rerun_completes(
    make_listmonk_server: MakeServer, dns_server: DnsServer, sqlite_url: str, version: str
) -> None:
    double = make_listmonk_server("main", version=version.split("-")[0])
    if version.endswith("no-sql-query"):
        double.revoke(SQL_QUERY)  # read by offset windows instead of by id
    warm = double.add_list("warmup")
    other = double.add_list("other")
    dns_server.zone.set_mx("moved.example", WORKSPACE)
    dns_server.zone.set_mx("fine.example", COX)
    ids = double.seed(600, domains=["moved.example", "fine.example"], lists=[warm, other])
    expected = set(ids[::2])
    engine = open_database(sqlite_url)
    settings = load_settings(env={"INBOXOPS_DNS_NAMESERVERS": dns_server.nameserver})
    domains = domain_classifier(engine, settings, offline=False, clock=Clock())
    pruner = Pruner(
        ["warmup"],
        Exclusions([parse_rule("operator:google")]),
        domains,
        Clock(),
        connect=no_sleep_client,
        batch_size=50,
    )
    double.fail(503, endpoint=LISTS_ACTION, after=2, times=6)  # 1 try + 5 retries
    try:
        [first] = pruner.run([double.instance()])
        assert first.error is not None
        assert "503" in first.error
        assert first.removed == 100
        [second] = pruner.run([double.instance()])
        assert second.error is None
        assert second.removed == len(expected) - 100
        sent = sent_ids(double, LISTS_ACTION)
        assert len(sent) == len(set(sent)) == len(expected)
        assert set(sent) == expected
        logged = [r.subscriber_id for r in removals(engine)]
        assert sorted(logged) == sorted(expected)
    finally:
        engine.dispose()
    now = memberships(double)
    assert {now[(f"user{i}@moved.example", warm)] for i in expected} == {"unsubscribed"}
    assert {st for (email, lst), st in now.items() if lst == other} == {"confirmed"}
    assert {st for (email, lst), st in now.items() if "fine" in email} == {"confirmed"}


def test_usage_errors_exit_2_before_anything_changes(
    listmonk_server: ListmonkDouble, dns_server: DnsServer, tmp_path: Path, sqlite_url: str
) -> None:
    listmonk_server.add_list("warmup-a")
    config = write_config(tmp_path / "c.toml", [listmonk_server])
    code, out, _ = run(
        ["listmonk", "prune", "--lists", "warmup-*", "--exclude-operator", "gogle", "--json"],
        config=config,
        db=sqlite_url,
    )
    assert code == 2
    assert "did you mean google" in out["error"]
    assert listmonk_server.requests == []
    code, out, _ = run(
        ["listmonk", "prune", "--lists", "wramup-*", "--exclude-operator", "google", "--json"],
        config=config,
        db=sqlite_url,
        nameserver=dns_server.nameserver,
    )
    assert code == 2
    assert "no list matches" in out["error"]
    assert mutations(listmonk_server) == []


def test_text_report(
    listmonk_server: ListmonkDouble, dns_server: DnsServer, world: dict[str, int], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.toml", [listmonk_server])
    db = f"sqlite:///{tmp_path / 'x.db'}"
    code, out, _ = prune(["--dry-run"], config, db, dns_server, Clock(T0))
    assert code == 0
    assert "dry run: nothing changed" in out
    assert "a1@always.example" in out
    assert "gmail-smtp-in.l.google.com" in out
    assert "broken.example" in out
    assert mutations(listmonk_server) == []
