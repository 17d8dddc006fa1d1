"""`inboxops listmonk scrub` against listmonk doubles on loopback (several at once, v3 BasicAuth
and v4+ tokens), operator rules decided by a real DNS server, the removals log on SQLite and
PostgreSQL. Failures mid-run are injected in the double; the rerun must finish the job with
nothing blocklisted twice and nothing skipped."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from inboxops.hygiene.exclusions import Exclusions, parse_rule
from inboxops.hygiene.scrub import Scrubber
from inboxops.hygiene.store import removals
from inboxops.storage.db import open_database
from tests.hygiene_support import (
    BLOCKLIST,
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
RULES = ["icloud.com", "me.com", "*.example.com"]


def populate(double: ListmonkDouble) -> dict[str, int]:
    """A mix: matches, near misses, and matches that are not enabled."""
    news = double.add_list("Newsletter")
    warm = double.add_list("warmup-a")
    emails = {
        "ann@icloud.com": "enabled",
        "bob@ME.com": "enabled",
        "cy@a.example.com": "enabled",
        "dee@example.com": "enabled",  # *.example.com is not example.com itself
        "eve@badexample.com": "enabled",
        "fay@icloud.com": "disabled",  # only enabled subscribers are scrubbed
        "gus@icloud.com": "blocklisted",
        "hal@gmail.com": "enabled",
    }
    return {
        email: double.add_subscriber(email, status=status, lists=[news, warm])
        for email, status in emails.items()
    }


MATCHED = {"ann@icloud.com", "bob@ME.com", "cy@a.example.com"}


def scrubber(
    engine: Engine | None, rules: list[str], *, batch_size: int = 2000, dry_run: bool = False
) -> Scrubber:
    return Scrubber(
        Exclusions(parse_rule(r) for r in rules),
        None,
        engine,
        Clock(),
        connect=no_sleep_client,
        dry_run=dry_run,
        batch_size=batch_size,
    )


def test_scrub_blocklists_matches_on_every_instance_and_is_idempotent(
    make_listmonk_server: MakeServer, tmp_path: Path, db_url: str
) -> None:
    main = make_listmonk_server("main", version="v6.2.0")
    hc = make_listmonk_server("hc", version="v3.0.0")
    ids = {"main": populate(main), "hc": populate(hc)}
    config = write_config(tmp_path / "c.toml", [main, hc], rules=RULES)

    code, out, _ = run(["listmonk", "scrub", "--json"], config=config, db=db_url)
    assert code == 0, out
    assert out["dry_run"] is False
    for name, double in (("main", main), ("hc", hc)):
        report = out["instances"][name]
        assert (report["scanned"], report["matched"], report["blocklisted"]) == (6, 3, 3)
        assert report["by_rule"] == {"*.example.com": 1, "icloud.com": 1, "me.com": 1}
        assert report["error"] is None
        now = statuses(double)
        assert {e for e, s in now.items() if s == "blocklisted"} == MATCHED | {"gus@icloud.com"}
        assert now["fay@icloud.com"] == "disabled"
        assert now["dee@example.com"] == now["eve@badexample.com"] == "enabled"
        # listmonk's blocklist also unsubscribes from every list
        assert set(double.memberships(ids[name]["ann@icloud.com"]).values()) == {"unsubscribed"}
        assert set(double.memberships(ids[name]["hal@gmail.com"]).values()) == {"confirmed"}
        assert double.count(BLOCKLIST) == 1  # one batch, not one request per subscriber
    assert {r.auth_scheme for r in main.requests} == {"token"}
    assert {r.auth_scheme for r in hc.requests} == {"basic"}
    engine = open_database(db_url)
    try:
        logged = removals(engine)
    finally:
        engine.dispose()
    assert sorted((r.instance, r.email, r.rule) for r in logged) == sorted(
        (name, email, rule)
        for name in ("main", "hc")
        for email, rule in (
            ("ann@icloud.com", "icloud.com"),
            ("bob@ME.com", "me.com"),
            ("cy@a.example.com", "*.example.com"),
        )
    )
    assert {(r.action, r.reason, r.list_id) for r in logged} == {("blocklist", "excluded", None)}

    # the same run again: nothing left to do, nothing sent
    code, out, _ = run(["listmonk", "scrub", "--json"], config=config, db=db_url)
    assert code == 0
    for name, double in (("main", main), ("hc", hc)):
        assert out["instances"][name]["matched"] == out["instances"][name]["blocklisted"] == 0
        assert double.count(BLOCKLIST) == 1


def test_the_removals_log_answers_who_was_taken_off_when_and_why(
    make_listmonk_server: MakeServer, tmp_path: Path, sqlite_url: str
) -> None:
    """`listmonk removals`: by window (default the last 30 days), instance, address or
    domain (any case), as JSON and as a table naming the rule."""
    main = make_listmonk_server("main", version="v6.2.0")
    hc = make_listmonk_server("hc", version="v3.0.0")
    populate(main)
    populate(hc)
    config = write_config(tmp_path / "c.toml", [main, hc], rules=RULES)
    assert run(["listmonk", "scrub"], config=config, db=sqlite_url)[0] == 0

    def ask(*args: str, clock: Clock | None = None) -> Any:
        clock = clock or Clock(T0 + timedelta(hours=1))  # the scrub ran an hour ago
        code, out, err = run(
            ["listmonk", "removals", *args],
            config=config,
            db=sqlite_url,
            clock=clock,
            env={"COLUMNS": "160"},  # the table unwrapped
        )
        assert code == 0, err
        return out

    everything = ask("--json")
    assert len(everything) == 6
    assert {r["at"] for r in everything} == {T0.isoformat()}
    [one] = ask("--json", "--instance", "hc", "--address", "ANN@icloud.com")
    assert (one["instance"], one["email"], one["action"]) == ("hc", "ann@icloud.com", "blocklist")
    assert (one["reason"], one["rule"], one["list"]) == ("excluded", "icloud.com", None)
    by_domain = ask("--json", "--address", "a.example.com")
    assert sorted(r["instance"] for r in by_domain) == ["hc", "main"]
    assert ask("--json", "--address", "example.com") == []  # a domain is matched whole
    assert ask("--json", "--since", "2026-12-07T05:31:00Z") == []
    assert len(ask("--json", "--since", "2026-12-07T05:30:00Z")) == 6  # since: inclusive
    until_t0 = ("--since", "2026-12-07T05:00:00Z", "--until", "2026-12-07T05:30:00Z")
    assert ask("--json", *until_t0) == []  # until: exclusive
    later = Clock(T0 + timedelta(days=31))
    assert ask("--json", clock=later) == []  # past the default 30 days
    assert len(ask("--json", "--days", "60", clock=later)) == 6

    table = ask("--address", "bob@me.com")
    assert "excluded by me.com" in table
    assert "every list" in table
    assert "no removals logged" in ask("--instance", "nowhere")


def test_dry_run_changes_nothing(
    make_listmonk_server: MakeServer, tmp_path: Path, sqlite_url: str
) -> None:
    main = make_listmonk_server("main")
    populate(main)
    before = statuses(main)
    settings = dict(main.settings)
    config = write_config(tmp_path / "c.toml", [main], rules=RULES)
    code, out, _ = run(
        ["listmonk", "scrub", "--dry-run", "--sync-domain-blocklist", "--json"],
        config=config,
        db=sqlite_url,
    )
    assert code == 0
    report = out["instances"]["main"]
    assert (report["matched"], report["blocklisted"]) == (3, 0)
    assert report["domain_blocklist"] == {
        "added": ["icloud.com", "me.com", "*.example.com"],
        "present": 0,
        "applied": False,
    }
    assert mutations(main) == []
    assert statuses(main) == before
    assert main.settings == settings
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # no log, no database

    code, out, _ = run(["listmonk", "scrub", "--dry-run"], config=config, db=sqlite_url)
    assert code == 0
    assert "dry run: nothing changed" in out
    assert "*.example.com" in out


def test_sync_domain_blocklist_merges_and_writes_only_what_is_missing(
    make_listmonk_server: MakeServer, tmp_path: Path, sqlite_url: str
) -> None:
    v6 = make_listmonk_server("main", version="v6.2.0")
    v5 = make_listmonk_server("old", version="v5.1.0")
    for double in (v6, v5):
        double.settings["privacy.domain_blocklist"] = ["spam.example", "ICLOUD.com"]
    config = write_config(
        tmp_path / "c.toml", [v6, v5], rules=[*RULES, "operator:apple", "*.icloud.com"]
    )
    # operator:apple needs DNS; no subscriber here, so nothing is looked up
    code, out, _ = run(
        ["listmonk", "scrub", "--sync-domain-blocklist", "--json"], config=config, db=sqlite_url
    )
    assert code == 0, out
    expected = ["spam.example", "ICLOUD.com", "me.com", "*.example.com", "*.icloud.com"]
    for name, double in (("main", v6), ("old", v5)):
        assert double.settings["privacy.domain_blocklist"] == expected
        sync = out["instances"][name]["domain_blocklist"]
        assert sync == {"added": expected[2:], "present": 2, "applied": True}
    assert v6.count("PUT /api/settings/:key") == 1  # v6: only that key
    assert v5.count("PUT /api/settings") == 1  # older: the whole object, secrets kept
    assert v5.settings["smtp"][0]["password"] == "smtp-secret-value"

    code, out, _ = run(
        ["listmonk", "scrub", "--sync-domain-blocklist", "--json"], config=config, db=sqlite_url
    )
    assert out["instances"]["main"]["domain_blocklist"]["added"] == []
    assert v6.count("PUT /api/settings/:key") == 1  # nothing missing: no write, no reload
    assert v5.count("PUT /api/settings") == 1


def test_sync_while_a_campaign_runs_is_saved_for_the_next_reload(
    listmonk_server: ListmonkDouble, tmp_path: Path, sqlite_url: str
) -> None:
    listmonk_server.campaign_running = True
    config = write_config(tmp_path / "c.toml", [listmonk_server], rules=["icloud.com"])
    code, out, _ = run(
        ["listmonk", "scrub", "--sync-domain-blocklist"], config=config, db=sqlite_url
    )
    assert code == 0
    assert "applied at listmonk's next reload" in out
    assert listmonk_server.settings["privacy.domain_blocklist"] == ["icloud.com"]


def test_operator_rules_decided_by_mx_once_per_domain(
    listmonk_server: ListmonkDouble, tmp_path: Path, sqlite_url: str, dns_server: DnsServer
) -> None:
    zone = dns_server.zone
    zone.set_mx("custom.example", [(10, "mx01.mail.icloud.com"), (20, "mx02.mail.icloud.com")])
    zone.set_mx("corp.example", [(10, "aspmx.l.google.com")])
    zone.set_null_mx("nullmx.example")
    zone.servfail("broken.example")
    for email in (
        "a@custom.example",
        "b@custom.example",
        "c@corp.example",
        "d@nullmx.example",
        "e@broken.example",
        "f@gone.example",  # not in the zone: NXDOMAIN, no operator
        "g@icloud.com",
    ):
        listmonk_server.add_subscriber(email)
    config = write_config(
        tmp_path / "c.toml", [listmonk_server], rules=["icloud.com", "operator:apple"]
    )
    code, out, _ = run(
        ["listmonk", "scrub", "--json"],
        config=config,
        db=sqlite_url,
        nameserver=dns_server.nameserver,
    )
    assert code == 0, out
    report = out["instances"]["main"]
    assert report["by_rule"] == {"icloud.com": 1, "operator:apple": 2}
    assert report["undecided"] == [
        {"domain": "broken.example", "status": "servfail", "subscribers": 1}
    ]
    blocked = {e for e, s in statuses(listmonk_server).items() if s == "blocklisted"}
    assert blocked == {"a@custom.example", "b@custom.example", "g@icloud.com"}
    assert dns_server.queries_for("custom.example", "MX") == 1
    assert dns_server.queries_for("icloud.com") == 0  # its domain rule decided it

    # the SERVFAIL clears: a later run decides the domain (and re-checks nothing else)
    zone.delete("broken.example")
    zone.set_mx("broken.example", [(10, "mx01.mail.icloud.com")])
    clock = Clock()
    clock.now = clock.now.replace(hour=23)  # past the failure TTL (600 s), within others' TTL
    code, out, _ = run(
        ["listmonk", "scrub", "--json"],
        config=config,
        db=sqlite_url,
        nameserver=dns_server.nameserver,
        clock=clock,
    )
    assert out["instances"]["main"]["by_rule"] == {"operator:apple": 1}
    assert statuses(listmonk_server)["e@broken.example"] == "blocklisted"


def test_without_sql_query_everyone_is_read_and_the_result_is_the_same(
    make_listmonk_server: MakeServer, tmp_path: Path, sqlite_url: str
) -> None:
    double = make_listmonk_server("main", version="v5.1.0")
    double.revoke(SQL_QUERY)
    populate(double)
    config = write_config(tmp_path / "c.toml", [double], rules=RULES)
    code, out, _ = run(["listmonk", "scrub", "--json"], config=config, db=sqlite_url)
    assert code == 0, out
    assert (out["instances"]["main"]["scanned"], out["instances"]["main"]["blocklisted"]) == (6, 3)
    assert {e for e, s in statuses(double).items() if s == "blocklisted"} == MATCHED | {
        "gus@icloud.com"
    }
    assert any(not r.param("query") for r in double.requests_to("GET /api/subscribers"))


# -- failures mid-run: the rerun finishes the job ------------------------------------------


def seeded(double: ListmonkDouble, n: int = 3000) -> set[int]:
    """``n`` subscribers, every tenth on icloud.com; returns the ids a scrub must blocklist."""
    domains = ["icloud.com", *(f"d{i}.example.net" for i in range(9))]
    ids = double.seed(n, domains=domains, lists=[double.add_list("all")])
    return {i for k, i in enumerate(ids) if k % 10 == 0}


def assert_done_once(double: ListmonkDouble, expected: set[int], engine: Engine) -> None:
    sent = sent_ids(double)
    assert len(sent) == len(set(sent)), "a subscriber was blocklisted twice"
    assert set(sent) == expected, "a subscriber was skipped"
    blocked = {
        int(r[0]) for r in double.sql("SELECT id FROM subscribers WHERE status != 'enabled'")
    }
    assert blocked == expected
    logged = [r.subscriber_id for r in removals(engine, instance=double.name)]
    assert sorted(logged) == sorted(expected)


def test_a_single_503_is_ridden_out(listmonk_server: ListmonkDouble, engine: Engine) -> None:
    expected = seeded(listmonk_server)
    listmonk_server.fail(503, endpoint=BLOCKLIST, after=1)
    listmonk_server.fail(503, endpoint="GET /api/subscribers", after=1)
    [result] = scrubber(engine, ["icloud.com"], batch_size=100).run([listmonk_server.instance()])
    assert result.error is None
    assert result.blocklisted == len(expected) == 300
    assert_done_once(listmonk_server, expected, engine)


@pytest.mark.parametrize("endpoint", [BLOCKLIST, "GET /api/subscribers"])
def test_503_beyond_the_retries_then_the_rerun_completes(
    listmonk_server: ListmonkDouble, engine: Engine, endpoint: str
) -> None:
    expected = seeded(listmonk_server)
    listmonk_server.fail(503, endpoint=endpoint, after=1, times=6)  # 1 try + 5 retries
    scrub = scrubber(engine, ["icloud.com"], batch_size=100)
    [first] = scrub.run([listmonk_server.instance()])
    assert first.error is not None
    assert "503" in first.error
    done = 100 if endpoint == BLOCKLIST else 0
    assert first.blocklisted == done
    [second] = scrub.run([listmonk_server.instance()])
    assert second.error is None
    assert second.matched == second.blocklisted == len(expected) - done
    assert_done_once(listmonk_server, expected, engine)


def test_server_gone_mid_run_then_back_the_rerun_completes_and_others_are_scrubbed(
    make_listmonk_server: MakeServer, engine: Engine
) -> None:
    main = make_listmonk_server("main")
    hc = make_listmonk_server("hc", version="v4.1.0")
    expected = {"main": seeded(main), "hc": seeded(hc)}
    main.stop_after(2, endpoint=BLOCKLIST)  # two batches through, then it goes away
    scrub = scrubber(engine, ["icloud.com"], batch_size=100)
    first = {r.instance: r for r in scrub.run([main.instance(), hc.instance()])}
    assert first["main"].error is not None
    assert "could not connect" in first["main"].error or "connection" in first["main"].error
    assert first["main"].blocklisted == 200
    assert first["hc"].error is None  # the other instance is scrubbed all the same
    assert_done_once(hc, expected["hc"], engine)

    main.start()  # back, on the same port
    [second] = scrub.run([main.instance()])
    assert second.error is None
    assert second.blocklisted == len(expected["main"]) - 200
    assert_done_once(main, expected["main"], engine)


def test_a_failing_instance_exits_1_and_the_others_are_scrubbed(
    make_listmonk_server: MakeServer, tmp_path: Path, sqlite_url: str
) -> None:
    main = make_listmonk_server("main")
    hc = make_listmonk_server("hc")
    populate(main)
    populate(hc)
    main.revoke("subscribers:manage")  # a 403: never retried
    config = write_config(tmp_path / "c.toml", [main, hc], rules=RULES)
    code, out, err = run(["listmonk", "scrub", "--json"], config=config, db=sqlite_url)
    assert code == 1
    assert "subscribers:manage" in out["instances"]["main"]["error"]
    assert out["instances"]["hc"]["blocklisted"] == 3
    assert "Error: main:" in err
    code, _, _ = run(["listmonk", "scrub", "--instance", "hc"], config=config, db=sqlite_url)
    assert code == 0
    assert main.count(BLOCKLIST) == 1  # the refused one only


# -- configuration -----------------------------------------------------------------------


def test_configuration_problems_exit_2(
    listmonk_server: ListmonkDouble, tmp_path: Path, sqlite_url: str
) -> None:
    none = write_config(tmp_path / "none.toml", [], rules=RULES)
    code, out, _ = run(["listmonk", "scrub", "--json"], config=none, db=sqlite_url)
    assert code == 2
    assert "INBOXOPS_LISTMONK_URL" in out["error"]
    one = write_config(tmp_path / "one.toml", [listmonk_server], rules=RULES)
    code, out, _ = run(
        ["listmonk", "scrub", "--instance", "mian", "--json"], config=one, db=sqlite_url
    )
    assert code == 2
    assert "'mian'" in out["error"]
    assert "main" in out["error"]
    empty = write_config(tmp_path / "empty.toml", [listmonk_server])
    code, out, _ = run(["listmonk", "scrub", "--json"], config=empty, db=sqlite_url)
    assert code == 2
    assert "empty" in out["error"]
    assert listmonk_server.requests == []


def test_single_instance_from_the_environment(
    listmonk_server: ListmonkDouble, tmp_path: Path, sqlite_url: str
) -> None:
    populate(listmonk_server)
    config = write_config(tmp_path / "c.toml", [], rules=RULES)
    inst = listmonk_server.instance()
    env = {
        "INBOXOPS_LISTMONK_URL": inst.url,
        "INBOXOPS_LISTMONK_USER": inst.user,
        "INBOXOPS_LISTMONK_TOKEN": inst.token.reveal(),
    }
    code, out, _ = run(["listmonk", "scrub", "--json"], config=config, db=sqlite_url, env=env)
    assert code == 0, out
    assert out["instances"]["default"]["blocklisted"] == 3


def test_a_terminal_sees_how_far_the_scrub_has_got(
    listmonk_server: ListmonkDouble, engine: Engine
) -> None:
    """Reading a big instance takes a while: the progress line counts subscribers read and
    batches blocklisted, and changes nothing about the result."""
    expected = seeded(listmonk_server, n=2500)
    notes: list[str] = []
    scrub = scrubber(engine, ["icloud.com"], batch_size=100)
    scrub.progress = notes.append
    [result] = scrub.run([listmonk_server.instance()])
    assert result.blocklisted == len(expected) == 250
    name = listmonk_server.name
    read = [n for n in notes if n.endswith(f"subscribers of {name} read")]
    assert read == [f"1,000 subscribers of {name} read", f"2,000 subscribers of {name} read",
                    f"2,500 subscribers of {name} read"]  # fmt: skip
    assert notes[-1] == f"250 of 250 blocklisted on {name}"
    assert_done_once(listmonk_server, expected, engine)
