"""The fleet-log generator and the parser held to each other: every line the generator writes
is read back, and the parser's counts, reasons and names must equal the generator's truth."""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from inboxops.demo.maillog import STYLES, FleetLog, Summary, write_maillog
from inboxops.demo.maillog_catalogue import STORY_NAME
from inboxops.reputation.model import Attempt, Event, Expired, MessageFrom, Notification
from inboxops.reputation.parse import PostfixLogParser
from inboxops.reputation.reasons import POLICY_BLOCK, REASONS

START = date(2026, 11, 2)


def read(lines: list[str], ref: datetime) -> tuple[list[Event], PostfixLogParser]:
    parser = PostfixLogParser(ref=ref)
    return list(parser.parse(lines)), parser


def assert_agree(summary: Summary, events: list[Event], parser: PostfixLogParser) -> None:
    stats = parser.stats
    assert [
        stats.attempts,
        stats.queue_events,
        stats.inbound,
        stats.other,
        stats.non_postfix,
        stats.malformed,
    ] == summary.counts
    assert stats.lines == summary.lines
    attempts = [e for e in events if isinstance(e, Attempt)]
    assert Counter(a.reason for a in attempts) == summary.reasons
    assert Counter(a.status for a in attempts) == summary.statuses
    assert Counter(a.syslog_name for a in attempts) == summary.by_syslog_name
    assert sum(isinstance(e, Expired) for e in events) == summary.expired
    assert sum(isinstance(e, Notification) for e in events) == summary.notifications


@pytest.fixture(scope="module")
def fortnight() -> tuple[FleetLog, list[str], list[Event], PostfixLogParser]:
    log = FleetLog(lines=60_000, seed=11, start=START, days=14)
    lines = list(log)
    events, parser = read(lines, ref=datetime(2026, 11, 17, tzinfo=UTC))
    return log, lines, events, parser


@pytest.mark.parametrize("style", STYLES)
def test_the_parser_reads_every_line_the_generator_writes(style: str) -> None:
    log = FleetLog(lines=15_000, seed=3, start=START, days=3, style=style)
    lines = list(log)
    events, parser = read(lines, ref=datetime(2026, 11, 6, tzinfo=UTC))
    summary = log.summary
    assert_agree(summary, events, parser)
    assert summary.malformed >= 4  # the damage done on purpose, and nothing else
    assert parser.malformed == summary.malformed
    assert summary.lines == len(lines) >= 15_000


def test_the_fortnight_story(
    fortnight: tuple[FleetLog, list[str], list[Event], PostfixLogParser],
) -> None:
    log, _, events, parser = fortnight
    summary = log.summary
    assert_agree(summary, events, parser)
    assert set(summary.reasons) == set(REASONS)  # every class shows up in two weeks
    since = summary.story_since.timestamp()
    story = [e for e in events if isinstance(e, Attempt) and e.syslog_name == STORY_NAME]
    before = [a for a in story if a.ts < since]
    after = [a for a in story if a.ts >= since]
    assert len(before) > 100
    assert len(after) > 30

    def blocked(attempts: list[Attempt]) -> float:
        return sum(a.reason == POLICY_BLOCK for a in attempts) / len(attempts)

    assert blocked(before) < 0.05 < 0.3 < blocked(after)
    others = [
        e
        for e in events
        if isinstance(e, Attempt) and e.ts >= since and e.syslog_name != STORY_NAME
    ]
    assert blocked(others) < 0.05


def test_a_fleet_as_operators_run_it(
    fortnight: tuple[FleetLog, list[str], list[Event], PostfixLogParser],
) -> None:
    log, lines, events, _ = fortnight
    attempts = [e for e in events if isinstance(e, Attempt)]
    names = {a.syslog_name for a in attempts}
    assert {
        "postfix-out05/smtp",
        "postfix-out07/smtp",
        STORY_NAME,
        "postfix-hc/smtp",
        "postfix/relay/smtp",
        "postfix/lmtp",
    } <= names
    assert all(len(a.queue_id) == 15 for a in attempts if a.syslog_name == "postfix-hc/smtp")
    assert any(a.recipient.startswith("seed-") for a in attempts)
    assert any(a.domain == "int.example" for a in attempts)
    assert any(a.relay_host is None for a in attempts)  # DNS and connection failures
    assert any(a.relay_ip and ":" in a.relay_ip for a in attempts)  # IPv6 MX
    assert any(isinstance(e, MessageFrom) and e.sender == "" for e in events)  # bounces
    domains = {a.domain for a in attempts}
    assert {"gmail.com", "outlook.com", "yahoo.com", "icloud.com", "comcast.net", "gmx.net"} <= (
        domains
    )
    hosts = {a.relay_host for a in attempts if a.relay_host}
    assert "gmail-smtp-in.l.google.com" in hosts
    assert any(h.endswith(".mail.protection.outlook.com") for h in hosts)
    assert any(h.endswith(".pphosted.com") for h in hosts)
    assert any(h.endswith(".mimecast.com") for h in hosts)
    ts = [e.ts for e in events]
    assert ts == sorted(ts)
    assert log.summary.start.timestamp() <= ts[0]
    assert ts[-1] < log.summary.end.timestamp()
    assert sum(": to=<" in line for line in lines) < len(lines) / 4  # mostly not deliveries


def test_deterministic_per_seed() -> None:
    def make(seed: int) -> list[str]:
        return list(FleetLog(lines=3000, seed=seed, start=START, days=2))

    assert make(5) == make(5)
    assert make(5) != make(6)


def test_a_log_across_new_year() -> None:
    log = FleetLog(lines=8000, seed=2, start=date(2026, 12, 29), days=5)
    lines = list(log)
    assert any(line.startswith("Dec 31") for line in lines)
    assert any(line.startswith("Jan  2") for line in lines)
    events, parser = read(lines, ref=datetime(2027, 1, 5, tzinfo=UTC))
    assert_agree(log.summary, events, parser)
    ts = [e.ts for e in events]
    assert ts == sorted(ts)
    assert datetime(2026, 12, 29, tzinfo=UTC).timestamp() <= ts[0]
    assert ts[-1] < datetime(2027, 1, 3, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("name", ["maillog", "maillog.gz"])
def test_write_maillog(tmp_path: Path, name: str) -> None:
    path = tmp_path / "logs" / name
    summary = write_maillog(path, lines=4000, seed=9, start=START, days=2, style="postlogd")
    assert summary.path == path
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        lines = fh.readlines()
    assert len(lines) == summary.lines
    assert lines[0].startswith("Nov 02 ")
    events, parser = read(lines, ref=datetime(2026, 11, 5, tzinfo=UTC))
    assert_agree(summary, events, parser)


def test_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError, match="style"):
        FleetLog(lines=10, style="json")
