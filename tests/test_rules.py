"""Alert rules at their boundaries; `inboxops dmarc alert` end to end (DB, rules, Telegram)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from inboxops.cli import root
from inboxops.cli.context import AppContext
from inboxops.config import AlertSettings
from inboxops.dmarc.model import IpStat
from inboxops.dmarc.rules import (
    OWN_IP_FAILING,
    SPOOFING,
    evaluate,
    render,
    render_text,
    strictest,
)
from inboxops.notify import html_to_text
from tests.helpers import NOW, aggregate_xml, write_report
from tests.servers.telegram import TelegramDouble

T = AlertSettings()


def stat(ip: str, messages: int, passed: int, *, own: bool, policy: str = "none") -> IpStat:
    return IpStat(
        ip=ip,
        messages=messages,
        passed=passed,
        failed=messages - passed,
        own=own,
        orgs=("google.com",),
        domains=("example.com",),
        policies=(policy,),
    )


def test_own_ip_at_exactly_95_percent_is_healthy() -> None:
    assert evaluate([stat("192.0.2.10", 2000, 1900, own=True)], T) == []


def test_own_ip_just_below_95_percent_alerts() -> None:
    [alert] = evaluate([stat("192.0.2.10", 10_000, 9499, own=True)], T)
    assert (alert.kind, alert.ip, alert.failed) == (OWN_IP_FAILING, "192.0.2.10", 501)
    assert alert.as_json()["pass_rate"] == 0.9499
    assert "5.0% of this IP's mail failed" in alert.advice
    for check in ("DKIM", "SPF", "PTR", "forwarder"):
        assert check in alert.advice


def test_own_ip_without_messages_is_not_judged() -> None:
    assert evaluate([stat("192.0.2.10", 0, 0, own=True)], T) == []


def test_spoofing_boundary_is_20_failures() -> None:
    assert evaluate([stat("203.0.113.5", 19, 0, own=False)], T) == []
    [alert] = evaluate([stat("203.0.113.5", 20, 0, own=False)], T)
    assert alert.kind == SPOOFING


def test_own_ips_are_never_spoofers() -> None:
    assert [a.kind for a in evaluate([stat("192.0.2.10", 500, 0, own=True)], T)] == [OWN_IP_FAILING]


def test_foreign_ip_passing_dmarc_is_not_spoofing() -> None:
    """A forwarder that keeps DKIM intact fails nothing."""
    assert evaluate([stat("198.51.100.7", 5000, 4990, own=False)], T) == []


def test_healthy_window_gives_no_alerts() -> None:
    stats = [
        stat("192.0.2.10", 1000, 1000, own=True),
        stat("192.0.2.11", 20, 19, own=True),
        stat("198.51.100.7", 300, 281, own=False),  # 19 failures
        stat("203.0.113.5", 3, 0, own=False),
    ]
    assert evaluate(stats, T) == []
    assert evaluate([], T) == []


@pytest.mark.parametrize(
    ("policy", "phrase"),
    [
        ("reject", "receivers are already rejecting these messages, no action needed"),
        ("quarantine", "go to spam"),
        ("none", "being delivered. Move toward p=quarantine"),
    ],
)
def test_spoofing_advice_names_the_policy(policy: str, phrase: str) -> None:
    [alert] = evaluate([stat("203.0.113.5", 40, 0, own=False, policy=policy)], T)
    assert alert.policy == policy
    assert f"p={policy}" in alert.advice
    assert phrase in alert.advice
    assert "INBOXOPS_OWN_IPS" in alert.advice


def test_strictest_published_policy_wins() -> None:
    mixed = replace(stat("203.0.113.5", 40, 0, own=False), policies=("none", "REJECT", "x"))
    [alert] = evaluate([mixed], T)
    assert alert.policy == "reject"
    assert strictest(["none", "quarantine"]) == "quarantine"
    assert strictest(["bogus"]) is None


def test_unknown_policy_advice_points_at_the_dmarc_record() -> None:
    unknown = replace(stat("203.0.113.5", 40, 0, own=False), policies=())
    [alert] = evaluate([unknown], T)
    assert alert.policy is None
    assert "_dmarc" in alert.advice


def test_thresholds_are_configurable() -> None:
    loose = AlertSettings(min_pass_rate=0.5, spoof_min_failed=100)
    stats = [stat("192.0.2.10", 100, 60, own=True), stat("203.0.113.5", 99, 0, own=False)]
    assert evaluate(stats, loose) == []


def test_own_alerts_first_then_most_failures_first() -> None:
    stats = [
        stat("203.0.113.5", 30, 0, own=False),
        stat("192.0.2.11", 100, 80, own=True),  # 20 failed
        stat("203.0.113.6", 90, 0, own=False),
        stat("192.0.2.10", 10, 5, own=True),  # 5 failed
        stat("192.0.2.12", 1000, 900, own=True),  # 100 failed
    ]
    assert [a.ip for a in evaluate(stats, T)] == [
        "192.0.2.12",
        "192.0.2.11",
        "192.0.2.10",
        "203.0.113.6",
        "203.0.113.5",
    ]


def test_as_json_shape() -> None:
    [alert] = evaluate([stat("203.0.113.5", 40, 0, own=False, policy="reject")], T)
    assert alert.as_json() == {
        "kind": "spoofing",
        "classification": "spoofing",
        "ip": "203.0.113.5",
        "ptr": None,
        "fcrdns": None,
        "base_domain": None,
        "service": None,
        "service_type": None,
        "country": None,
        "messages": 40,
        "failed": 40,
        "forwarded_failed": 0,
        "evidence": [],
        "pass_rate": 0.0,
        "orgs": ["google.com"],
        "domains": ["example.com"],
        "policy": "reject",
        "advice": alert.advice,
    }


def test_rendering_escapes_every_interpolated_value() -> None:
    hostile = IpStat("192.0.2.10", 10, 5, 5, True, ("<script>&",), ("a<b>.example",), ("none",))
    alerts = evaluate([stat("203.0.113.5", 30, 0, own=False), hostile], T)
    title, body = render(alerts, window="last 7 days <UTC> & more")
    assert title == "inboxops: 2 DMARC alerts"
    assert body.startswith("<b>inboxops: 2 DMARC alerts</b>\n")
    assert "&lt;script&gt;&amp;" in body
    assert "last 7 days &lt;UTC&gt; &amp; more" in body
    assert "<script>" not in body
    assert html_to_text(body).count("<script>&") == 1  # round-trips to the raw value
    text = render_text(alerts, window="w")
    assert "<script>&" in text  # plain text is not escaped
    assert "Spoofing from 203.0.113.5" in text


def test_render_of_nothing_has_a_sensible_title() -> None:
    title, _ = render([], window="w")
    assert title == "inboxops: no DMARC alerts"
    title, body = render([], window="w", cleared=[(SPOOFING, "203.0.113.5")])
    assert title == "inboxops: 1 resolved"
    assert "Resolved: 203.0.113.5" in body


# -- end to end: stored reports -> `inboxops dmarc alert` -> Telegram double -----------------


def _seed(db_url: str, tmp_path: Path, rows: list[tuple[str, int, bool]], p: str = "none") -> None:
    write_report(tmp_path / "r", "a.xml", aggregate_xml(report_id="a", p=p, rows=rows))
    result = CliRunner().invoke(root, ["--db", db_url, "dmarc", "import", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output


def _alert(
    db_url: str, telegram: TelegramDouble, *extra: str, now: datetime = NOW
) -> tuple[int, str]:
    env = {
        "INBOXOPS_OWN_IPS": "192.0.2.0/28",
        "INBOXOPS_TELEGRAM_BOT_TOKEN": telegram.token,
        "INBOXOPS_TELEGRAM_CHAT_ID": "-100777",
        "INBOXOPS_TELEGRAM_API_URL": telegram.url,
    }
    result = CliRunner().invoke(
        root,
        ["--db", db_url, "dmarc", "alert", "--json", *extra],
        env=env,
        obj=AppContext(clock=lambda: now),
    )
    return result.exit_code, result.stdout


def test_healthy_window_sends_nothing(
    db_url: str, tmp_path: Path, telegram_server: TelegramDouble
) -> None:
    _seed(db_url, tmp_path, [("192.0.2.10", 95, True), ("192.0.2.10", 5, False)])
    _seed(db_url, tmp_path / "b", [("203.0.113.5", 19, False)])
    code, out = _alert(db_url, telegram_server)
    assert (code, json.loads(out)) == (0, [])
    assert telegram_server.requests == []


def test_boundaries_alert_and_send(
    db_url: str, tmp_path: Path, telegram_server: TelegramDouble
) -> None:
    rows = [
        ("192.0.2.10", 9499, True),
        ("192.0.2.10", 501, False),  # 94.99%
        ("203.0.113.5", 20, False),  # exactly 20 failures
        ("203.0.113.9", 19, False),  # one short
    ]
    _seed(db_url, tmp_path, rows, p="reject")
    code, out = _alert(db_url, telegram_server)
    alerts = json.loads(out)
    assert code == 3
    assert [(a["kind"], a["ip"], a["failed"]) for a in alerts] == [
        ("own_ip_failing", "192.0.2.10", 501),
        ("spoofing", "203.0.113.5", 20),
    ]
    assert set(alerts[0]) >= {"kind", "ip", "messages", "failed", "pass_rate", "orgs"}
    assert alerts[0]["pass_rate"] == 0.9499
    assert alerts[1]["policy"] == "reject"
    [message] = telegram_server.messages
    assert "192.0.2.10" in message
    assert "203.0.113.5" in message
    assert "203.0.113.9" not in message


def test_dry_run_evaluates_but_sends_nothing(
    db_url: str, tmp_path: Path, telegram_server: TelegramDouble
) -> None:
    _seed(db_url, tmp_path, [("203.0.113.5", 50, False)])
    code, out = _alert(db_url, telegram_server, "--dry-run")
    assert code == 3
    assert [a["kind"] for a in json.loads(out)] == ["spoofing"]
    assert telegram_server.requests == []


def test_alerts_outside_the_window_are_ignored(
    sqlite_url: str, tmp_path: Path, telegram_server: TelegramDouble
) -> None:
    _seed(sqlite_url, tmp_path, [("203.0.113.5", 50, False)])
    code, out = _alert(
        sqlite_url, telegram_server, "--since", "2026-01-01", "--until", "2026-02-01"
    )
    assert (code, json.loads(out)) == (0, [])


def _alert_at(
    db_url: str, telegram: TelegramDouble, now: datetime
) -> tuple[int, list[dict[str, Any]]]:
    code, out = _alert(db_url, telegram, now=now)
    return code, json.loads(out) if out.strip() else []


def test_hourly_runs_repeat_an_alert_only_when_due(
    db_url: str, tmp_path: Path, telegram_server: TelegramDouble
) -> None:
    """An unchanged spoofer is reported once, again after repeat_hours, and at once when its
    failures double; every run still lists it (exit 3) for scripts."""
    _seed(db_url, tmp_path, [("203.0.113.5", 30, False)])
    code, alerts = _alert_at(db_url, telegram_server, NOW)
    assert (code, len(telegram_server.messages)) == (3, 1)
    assert alerts[0]["suppressed"] is False

    code, alerts = _alert_at(db_url, telegram_server, NOW + timedelta(hours=1))
    assert (code, len(telegram_server.messages)) == (3, 1)
    assert alerts[0]["suppressed"] is True

    write_report(
        tmp_path / "more",
        "b.xml",
        aggregate_xml(report_id="b", rows=[("203.0.113.5", 40, False)]),
    )
    CliRunner().invoke(root, ["--db", db_url, "dmarc", "import", str(tmp_path / "more")])
    code, alerts = _alert_at(db_url, telegram_server, NOW + timedelta(hours=2))
    assert len(telegram_server.messages) == 2  # 70 failures: more than double the 30 sent
    assert alerts[0]["failed"] == 70

    _alert_at(db_url, telegram_server, NOW + timedelta(hours=3))
    assert len(telegram_server.messages) == 2
    _alert_at(db_url, telegram_server, NOW + timedelta(hours=27))
    assert len(telegram_server.messages) == 3


def test_failed_delivery_is_retried_next_run(
    sqlite_url: str, tmp_path: Path, telegram_server: TelegramDouble
) -> None:
    _seed(sqlite_url, tmp_path, [("203.0.113.5", 30, False)])
    telegram_server.fail_next("chat_not_found")
    code, _ = _alert_at(sqlite_url, telegram_server, NOW)
    assert code == 1
    assert telegram_server.messages == []
    code, _ = _alert_at(sqlite_url, telegram_server, NOW + timedelta(minutes=5))
    assert (code, len(telegram_server.messages)) == (3, 1)


def test_resolved_alert_sends_one_all_clear(
    db_url: str, tmp_path: Path, telegram_server: TelegramDouble
) -> None:
    """Once a sent alert no longer holds (here: its reports left the 7-day window), one
    "resolved" message goes out and the state is cleared; later healthy runs stay silent."""
    _seed(db_url, tmp_path, [("203.0.113.5", 30, False)])
    _alert_at(db_url, telegram_server, NOW)
    assert len(telegram_server.messages) == 1
    code, alerts = _alert_at(db_url, telegram_server, NOW + timedelta(days=9))
    assert (code, alerts) == (0, [])
    assert len(telegram_server.messages) == 2
    assert "Resolved: 203.0.113.5" in telegram_server.messages[1]
    _alert_at(db_url, telegram_server, NOW + timedelta(days=10))
    assert len(telegram_server.messages) == 2
