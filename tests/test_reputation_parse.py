"""The Postfix log parser on real lines: the recipe's Postfix 3.7 output, the reference's samples,
every timestamp style, multi-instance names, and what a real log also holds (noise, damage)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inboxops.reputation.model import (
    Attempt,
    Event,
    Expired,
    MessageFrom,
    Notification,
    Removed,
)
from inboxops.reputation.parse import _SCAN_CHUNK, MAX_REPLY, MAX_SAMPLES, PostfixLogParser

REF = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def parse(text: str, **kwargs: object) -> tuple[list[Event], PostfixLogParser]:
    """Events and parser; the C scanner's reading (when built) and the Python loop's must be
    the same (tests/test_reputation_scan.py holds them to it on whole logs)."""
    parser = PostfixLogParser(**{"ref": REF, **kwargs})  # type: ignore[arg-type]
    events = list(parser.parse(text.splitlines(keepends=True)))
    plain = PostfixLogParser(**{"ref": REF, **kwargs, "accelerated": False})  # type: ignore[arg-type]
    assert list(plain.parse(text.splitlines(keepends=True))) == events
    assert plain.stats == parser.stats
    stats = parser.stats
    assert stats.lines == len(text.splitlines())
    assert stats.lines == (
        stats.attempts
        + stats.queue_events
        + stats.inbound
        + stats.other
        + stats.non_postfix
        + stats.malformed
    )
    return events, parser


def one(text: str, **kwargs: object) -> Event:
    events, parser = parse(text, **kwargs)
    assert len(events) == 1, (events, parser.stats)
    return events[0]


def safe(text: str) -> bool:
    """Nothing in ``text`` can move a terminal's cursor or start a new (forged) line."""
    return not any(unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs") for ch in text)


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


# The five lines of shared/recipes/postfix-test-mta.md, as Postfix 3.7.11 wrote them.
RECIPE = """\
Nov 24 14:49:24 out05 postfix-out05/smtp[12990]: DA572164318: to=<user@yahoo.com>, relay=mta5.am0.yahoodns.net[127.0.0.1]:2525, delay=6.8, delays=6.7/0/0.01/0.01, dsn=4.7.0, status=deferred (host mta5.am0.yahoodns.net[127.0.0.1] said: 421 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes (in reply to RCPT TO command))
Nov 24 14:49:24 out05 postfix-out05/smtp[12993]: E38DF164322: to=<user@outlook.com>, relay=outlook-com.olc.protection.outlook.com[127.0.0.1]:2525, delay=6.7, delays=6.7/0/0.01/0.01, dsn=5.7.1, status=bounced (host outlook-com.olc.protection.outlook.com[127.0.0.1] said: 550 5.7.1 Unfortunately, messages from [127.0.0.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). (in reply to RCPT TO command))
Nov 24 14:49:24 out05 postfix-out05/smtp[13087]: D18FF16431A: to=<user@gmail.com>, relay=gmail-smtp-in.l.google.com[127.0.0.1]:2525, delay=6.8, delays=6.8/0.02/0/0, dsn=2.0.0, status=sent (250 2.0.0 queued)
Nov 24 14:49:24 out05 postfix-out05/bounce[13088]: E38DF164322: sender non-delivery notification: 9A489164326
Nov 24 14:49:17 out05 postfix-out05/smtp[12990]: D18FF16431A: to=<user@gmail.com>, relay=none, delay=0.06, delays=0.04/0.01/0/0, dsn=4.4.4, status=deferred (unable to look up host gmail-smtp-in.l.google.com: Temporary failure in name resolution)
"""  # noqa: E501


def test_recipe_lines_field_by_field() -> None:
    events, parser = parse(RECIPE)
    assert parser.stats.malformed == 0
    yahoo, outlook, gmail, notice, dns = events
    assert isinstance(yahoo, Attempt)
    assert yahoo.ts == utc(2026, 11, 24, 14, 49, 24)
    assert (yahoo.host, yahoo.syslog_name, yahoo.service) == ("out05", "postfix-out05/smtp", "smtp")
    assert (yahoo.queue_id, yahoo.recipient, yahoo.domain) == (
        "DA572164318",
        "user@yahoo.com",
        "yahoo.com",
    )
    assert (yahoo.relay_host, yahoo.relay_ip, yahoo.relay_port) == (
        "mta5.am0.yahoodns.net",
        "127.0.0.1",
        2525,
    )
    assert (yahoo.dsn, yahoo.status, yahoo.reason, yahoo.orig_to) == (
        "4.7.0",
        "deferred",
        "throttled",
        None,
    )
    assert yahoo.reply.startswith("host mta5.am0.yahoodns.net[127.0.0.1] said: 421 4.7.0 [TSS04]")
    assert yahoo.reply.endswith("(in reply to RCPT TO command)")
    assert yahoo.line == RECIPE.splitlines()[0]
    assert isinstance(outlook, Attempt)
    assert (outlook.status, outlook.dsn, outlook.reason) == ("bounced", "5.7.1", "policy_block")
    assert isinstance(gmail, Attempt)
    assert (gmail.status, gmail.reason, gmail.reply) == ("sent", "accepted", "250 2.0.0 queued")
    assert notice == Notification(
        utc(2026, 11, 24, 14, 49, 24),
        "out05",
        "postfix-out05/bounce",
        "E38DF164322",
        "9A489164326",
        "sender non-delivery",
    )
    assert isinstance(dns, Attempt)
    assert (dns.relay_host, dns.relay_ip, dns.relay_port) == (None, None, None)
    assert (dns.ts, dns.dsn, dns.reason) == (utc(2026, 11, 24, 14, 49, 17), "4.4.4", "dns")


# The reference's line-type table, with the elided parts filled in plausibly.
REFERENCE_LINES = """\
Jun  4 07:00:01 mx postfix/smtp[2345]: 8C8B2E0A4C: to=<ivan@mail.ru>, relay=mxs.mail.ru[94.100.176.20]:25, delay=15, delays=11/0/0.02/4, dsn=2.0.0, status=sent (250 OK id=1SoWf6-0000Dv-Lf)
Jun  4 07:00:02 mx postfix/smtp[2346]: 9D9C3F1B5D: to=<someone@hotmail.com>, relay=hotmail-com.olc.protection.outlook.com[104.47.57.161]:25, delay=767, delays=760/3.5/2.5/0.63, dsn=4.7.651, status=deferred (host hotmail-com.olc.protection.outlook.com[104.47.57.161] said: 451 4.7.651 The mail server [45.133.73.165] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S844) [DM6NAM11FT088.eop-nam11.prod.outlook.com 2023-10-28T12:19:31.847Z 08DBD70830F39917] (in reply to RCPT TO command))
Jun  4 07:00:03 mx postfix/smtp[2347]: AE0D4A2C6E: to=<jan@gmail.com>, relay=gmail-smtp-in.l.google.com[2607:f8b0:400d:c0e::1a]:25, delay=0.79, delays=0.04/0.05/0.2/0.5, dsn=5.7.26, status=bounced (host gmail-smtp-in.l.google.com[2607:f8b0:400d:c0e::1a] said: 550-5.7.26 Your email has been blocked because the sender is unauthenticated. 550-5.7.26 Gmail requires all senders to authenticate with either SPF or DKIM. 550 5.7.26 x1si2.3 - gsmtp (in reply to end of DATA command))
Jun  4 07:00:03 mx postfix/cleanup[2348]: BF1E5B3D7F: message-id=<20260604070003.BF1E5B3D7F@mx.example.net>
Jun  4 07:00:03 mx postfix/bounce[2349]: AE0D4A2C6E: sender non-delivery notification: BF1E5B3D7F
Jun  4 07:00:03 mx postfix/qmgr[1200]: BF1E5B3D7F: from=<>, size=3863, nrcpt=1 (queue active)
Jun  4 07:00:04 mx postfix/smtp[2350]: connect to mail.mydomain.com[203.0.113.9]:25: Connection timed out
Jun  4 07:00:04 mx postfix/smtp[2350]: C02F6C4E80: to=<a@mydomain.com>, relay=none, delay=50784, delays=50754/0.01/30/0, dsn=4.4.1, status=deferred (connect to mail.mydomain.com[203.0.113.9]:25: Connection timed out)
Jun  4 07:00:05 mx postfix/smtp[2351]: connect to gmail-smtp-in.l.google.com[2607:f8b0:400d:c0e::1a]:25: Network is unreachable
Jun  4 07:00:05 mx postfix/smtp[2352]: D1307D5F91: to=<b@gmx.net>, relay=mx00.emig.gmx.net[212.227.15.9]:25, delay=14142, delays=13542/0.04/600/0, dsn=4.4.2, status=deferred (conversation with mx00.emig.gmx.net[212.227.15.9] timed out while receiving the initial server greeting)
Jun  4 07:00:06 mx postfix/smtp[2353]: E2418E6FA2: to=<c@example.org>, relay=localhost[127.0.0.1]:25, delay=0.01, delays=0/0/0.01/0, dsn=4.4.2, status=deferred (lost connection with localhost[127.0.0.1] while receiving the initial server greeting)
Jun  4 07:00:06 mx postfix/smtp[1295]: BC495AA0516: lost connection with mta7.am0.yahoodns.net[67.195.228.110] while sending RCPT TO
Jun  4 07:00:06 mx postfix/smtp[1295]: BC495AA0516: host mta7.am0.yahoodns.net[67.195.228.110] said: 421 4.7.0 [TSS04] Messages from 192.0.2.15 temporarily deferred (in reply to MAIL FROM command)
Jun  4 07:00:07 mx postfix/qmgr[1200]: F3529F7AB3: from=<news@example.net>, size=1546, nrcpt=20 (queue active)
Jun  4 07:00:07 mx postfix/qmgr[1200]: F3529F7AB3: removed
Jun  4 07:00:07 mx postfix/qmgr[1200]: 0463A08BC4: from=<news@example.net>, status=expired, returned to sender
Jun  4 07:00:08 mx postfix/pickup[2354]: 15749A9CD5: uid=0 from=<root>
Jun  4 07:00:08 mx postfix/postscreen[2355]: CONNECT from [10.42.0.140]:13324 to [10.42.0.233]:25
Jun  4 07:00:08 mx postfix/postscreen[2355]: PASS OLD [10.42.0.140]:13324
Jun  4 07:00:08 mx postfix/smtpd[2356]: NOQUEUE: reject: RCPT from h2232618.example.com[198.51.100.7]: 554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/198.51.100.7; from=<x@example.com> to=<y@example.net> proto=ESMTP helo=<h2232618.example.com>
Jun  4 07:00:08 mx postfix/smtpd[2356]: disconnect from unknown[198.51.100.7] ehlo=1 auth=0/1 rset=1 quit=1 commands=3/4
Jun  4 07:00:09 mx postfix/smtp[2357]: Trusted TLS connection established to gmail-smtp-in.l.google.com[142.250.27.26]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
"""  # noqa: E501


def test_reference_lines() -> None:
    events, parser = parse(REFERENCE_LINES)
    stats = parser.stats
    assert (stats.attempts, stats.queue_events, stats.inbound, stats.other) == (6, 5, 4, 7)
    assert (stats.non_postfix, stats.malformed) == (0, 0)
    attempts = [e for e in events if isinstance(e, Attempt)]
    assert [(a.status, a.reason) for a in attempts] == [
        ("sent", "accepted"),
        ("deferred", "throttled"),
        ("bounced", "auth_failure"),
        ("deferred", "connection"),
        ("deferred", "connection"),
        ("deferred", "connection"),
    ]
    gmail = attempts[2]
    assert (gmail.relay_host, gmail.relay_ip, gmail.relay_port) == (
        "gmail-smtp-in.l.google.com",
        "2607:f8b0:400d:c0e::1a",
        25,
    )
    assert attempts[0].ts == utc(2026, 6, 4, 7, 0, 1)
    queue = [e for e in events if not isinstance(e, Attempt)]
    assert queue == [
        Notification(utc(2026, 6, 4, 7, 0, 3), "mx", "postfix/bounce", "AE0D4A2C6E",
                     "BF1E5B3D7F", "sender non-delivery"),
        MessageFrom(utc(2026, 6, 4, 7, 0, 3), "mx", "postfix/qmgr", "BF1E5B3D7F", "", 3863, 1),
        MessageFrom(utc(2026, 6, 4, 7, 0, 7), "mx", "postfix/qmgr", "F3529F7AB3",
                    "news@example.net", 1546, 20),
        Removed(utc(2026, 6, 4, 7, 0, 7), "mx", "postfix/qmgr", "F3529F7AB3"),
        Expired(utc(2026, 6, 4, 7, 0, 7), "mx", "postfix/qmgr", "0463A08BC4", "news@example.net"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("stamp", "kwargs", "expected"),
    [
        ("Jun  4 07:00:01", {}, utc(2026, 6, 4, 7, 0, 1)),  # syslog: space-padded day
        ("Jun 04 07:00:01", {}, utc(2026, 6, 4, 7, 0, 1)),  # postlogd: zero-padded day
        ("2021-04-21T17:16:28+02:00", {}, utc(2021, 4, 21, 15, 16, 28)),
        ("2021-04-21T17:16:28.250000+02:00", {}, utc(2021, 4, 21, 15, 16, 28) + 0.25),
        ("2021-04-21T17:16:28Z", {}, utc(2021, 4, 21, 17, 16, 28)),
        ("2021-04-21T17:16:28.5-05:00", {}, utc(2021, 4, 21, 22, 16, 28) + 0.5),
        ("2021-04-21T17:16:28+0200", {}, utc(2021, 4, 21, 15, 16, 28)),  # journalctl short-iso
        ("2021-04-21T17:16:28", {"tz": ZoneInfo("Europe/Berlin")}, utc(2021, 4, 21, 15, 16, 28)),
        ("Jan 15 10:00:00", {"tz": ZoneInfo("Europe/Berlin")}, utc(2026, 1, 15, 9, 0, 0)),
        ("Jul 15 10:00:00", {"tz": ZoneInfo("America/New_York")}, utc(2026, 7, 15, 14, 0, 0)),
    ],
)
def test_timestamp_styles(stamp: str, kwargs: dict[str, object], expected: float) -> None:
    event = one(f"{stamp} out05 postfix-out05/qmgr[1299]: DA572164318: removed\n", **kwargs)
    assert event.ts == pytest.approx(expected, abs=1e-6)


def test_a_log_spanning_new_year() -> None:
    log = (
        "Dec 31 23:59:58 h postfix/qmgr[1]: AAAAA11111: removed\n"
        "Dec 31 23:59:59 h postfix/qmgr[1]: BBBBB22222: removed\n"
        "Jan  1 00:00:00 h postfix/qmgr[1]: CCCCC33333: removed\n"
        "Dec 31 23:59:59 h postfix/qmgr[1]: DDDDD44444: removed\n"  # a straggler, merged late
        "Jan  1 00:00:01 h postfix/qmgr[1]: EEEEE55555: removed\n"
    )
    expected = [
        utc(2025, 12, 31, 23, 59, 58),
        utc(2025, 12, 31, 23, 59, 59),
        utc(2026, 1, 1, 0, 0, 0),
        utc(2025, 12, 31, 23, 59, 59),
        utc(2026, 1, 1, 0, 0, 1),
    ]
    early_january = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    inferred, _ = parse(log, ref=early_january)
    assert [e.ts for e in inferred] == expected
    given_year, _ = parse(log, ref=datetime(2030, 6, 1, tzinfo=UTC), year=2025)
    assert [e.ts for e in given_year] == expected
    # the same log read back in December: the first line is this year's
    december = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert [e.ts for e in parse(log, ref=december)[0]] == expected


def test_year_inference_from_the_reference_time() -> None:
    line = "Nov 24 14:49:24 out05 postfix-out05/qmgr[1299]: DA572164318: removed\n"
    assert one(line).ts == utc(2026, 11, 24, 14, 49, 24)  # REF is 2026-11-30
    # one day of clock skew is tolerated; more means the line is from last year
    assert one(line, ref=datetime(2026, 11, 23, 15, 0, tzinfo=UTC)).ts == utc(
        2026, 11, 24, 14, 49, 24
    )
    assert one(line, ref=datetime(2026, 11, 20, tzinfo=UTC)).ts == utc(2025, 11, 24, 14, 49, 24)
    parser = PostfixLogParser(ref=datetime(2026, 11, 20, tzinfo=UTC))
    assert [e.ts for e in parser.parse([line], year=2024)] == [utc(2024, 11, 24, 14, 49, 24)]


@pytest.mark.parametrize(
    ("program", "syslog_name", "service"),
    [
        ("postfix/smtp[2345]:", "postfix/smtp", "smtp"),
        ("postfix-out05/smtp[2345]:", "postfix-out05/smtp", "smtp"),
        ("postfix-out07/msft/smtp[2345]:", "postfix-out07/msft/smtp", "smtp"),
        ("postfix-hc/smtp[2345]:", "postfix-hc/smtp", "smtp"),
        ("postfix/relay/smtp[2345]:", "postfix/relay/smtp", "smtp"),
        ("server1-1/smtp[17514]:", "server1-1/smtp", "smtp"),
        ("postfix/lmtp[2345]:", "postfix/lmtp", "lmtp"),
        ("postfix/error[2345]:", "postfix/error", "error"),
        ("postfix/virtual[2345]:", "postfix/virtual", "virtual"),
    ],
)
def test_multi_instance_names(program: str, syslog_name: str, service: str) -> None:
    line = (
        f"Nov 24 14:49:24 out07 {program} 4Z3Qc05q1Lz9vCg: to=<A.User@Example.ORG>, "
        "relay=mx.example.org[203.0.113.7]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, "
        "status=sent (250 2.0.0 Ok: queued as 4XyZ)\n"
    )
    event = one(line)
    assert isinstance(event, Attempt)
    assert (event.syslog_name, event.service, event.host) == (syslog_name, service, "out07")
    assert event.queue_id == "4Z3Qc05q1Lz9vCg"  # a long queue id
    assert (event.recipient, event.domain) == ("a.user@example.org", "example.org")


DELIVERY = "Nov 24 14:49:24 out05 postfix/smtp[1]: DA572164318: "


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            "to=<alice@int.example>, orig_to=<postmaster@shop.example>, relay=local, delay=0.1, "
            "delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered to mailbox)",
            ("alice@int.example", "postmaster@shop.example", "local", None, None),
        ),
        (
            "to=<bob@int.example>, relay=mail.int.example[private/dovecot-lmtp], delay=0.1, "
            "delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <bob@int.example> Saved)",
            ("bob@int.example", None, "mail.int.example", "private/dovecot-lmtp", None),
        ),
        (
            "to=<c@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.27.26]:25, conn_use=3, "
            "delay=0.5, delays=0.1/0/0/0.4, dsn=2.0.0, status=sent (250 2.0.0 OK - gsmtp)",
            ("c@gmail.com", None, "gmail-smtp-in.l.google.com", "142.250.27.26", 25),
        ),
        (
            "to=<>, relay=none, delay=0, delays=0/0/0/0, dsn=5.1.3, status=bounced (bad address "
            "syntax)",
            ("", None, None, None, None),
        ),
        (
            'to=<"john>doe"@example.org>, relay=mx.example.org[203.0.113.7]:25, delay=1, '
            "delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)",
            ('"john>doe"@example.org', None, "mx.example.org", "203.0.113.7", 25),
        ),
        (
            "to=<postmaster>, relay=dovecot, delay=0.02, delays=0/0/0/0.02, dsn=2.0.0, "
            "status=sent (delivered via dovecot service)",
            ("postmaster", None, "dovecot", None, None),
        ),
    ],
)
def test_delivery_line_variants(fields: str, expected: tuple[object, ...]) -> None:
    event = one(DELIVERY + fields + "\n")
    assert isinstance(event, Attempt)
    assert (
        event.recipient,
        event.orig_to,
        event.relay_host,
        event.relay_ip,
        event.relay_port,
    ) == expected
    assert event.domain == (expected[0].rpartition("@")[2] if "@" in str(expected[0]) else "")


def test_statuses_outside_the_three_are_not_attempts() -> None:
    log = (
        DELIVERY + "to=<a@example.org>, relay=mx.example.org[203.0.113.7]:25, delay=1, "
        "delays=0/0/0/1, dsn=2.1.5, status=deliverable (250 2.1.5 Ok)\n"
        + DELIVERY + "to=<b@example.org>, relay=mx.example.org[203.0.113.7]:25, delay=1, "
        "delays=0/0/0/1, dsn=5.1.1, status=SOFTBOUNCE (host mx said: 550 5.1.1 User unknown)\n"
    )  # fmt: skip
    events, parser = parse(log)
    assert parser.stats.other == 1
    assert [(e.status, e.reason) for e in events if isinstance(e, Attempt)] == [
        ("deferred", "user_unknown")
    ]


def test_qmgr_deferring_a_suspended_destination_is_an_attempt() -> None:
    event = one(
        "Nov 24 14:49:24 out05 postfix/qmgr[9]: DA572164318: to=<a@example.org>, relay=none, "
        "delay=3600, delays=3600/0/0/0, dsn=4.4.1, status=deferred (delivery temporarily "
        "suspended: connect to mx.example.org[203.0.113.7]:25: Connection refused)\n"
    )
    assert isinstance(event, Attempt)
    assert (event.service, event.reason) == ("qmgr", "connection")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("sender non-delivery notification: 9A489164326", "sender non-delivery"),
        ("sender delivery status notification: 9A489164326", "sender delivery status"),
        ("postmaster non-delivery notification: 9A489164326", "postmaster non-delivery"),
        ("sender delay notification: 9A489164326", "sender delay"),
    ],
)
def test_notifications(text: str, kind: str) -> None:
    event = one(f"Nov 24 14:49:24 out05 postfix-out05/bounce[1]: E38DF164322: {text}\n")
    assert isinstance(event, Notification)
    assert (event.queue_id, event.notice_queue_id, event.kind) == (
        "E38DF164322",
        "9A489164326",
        kind,
    )


def test_the_reply_is_capped_and_the_line_kept_without_its_newline() -> None:
    long_reply = "550 5.7.1 " + "x" * 3000
    line = (
        DELIVERY + "to=<a@example.org>, relay=mx.example.org[203.0.113.7]:25, delay=1, "
        f"delays=0/0/0/1, dsn=5.7.1, status=bounced (host mx said: {long_reply})\r\n"
    )
    event = one(line)
    assert isinstance(event, Attempt)
    assert len(event.reply) == MAX_REPLY
    assert event.line == line[:-2]
    assert event.reason == "policy_block"


NOISE = """\
Nov 24 14:49:24 mx1 postfix/anvil[5]: statistics: max connection rate 3/60s for (smtp:198.51.100.7) at Nov 24 14:45:02
Nov 24 14:49:24 mx1 postfix/dnsblog[6]: addr 198.51.100.7 listed by domain zen.spamhaus.org as 127.0.0.2
Nov 24 14:49:24 mx1 postfix/tlsproxy[7]: CONNECT from [198.51.100.7]:51234
Nov 24 14:49:24 mx1 postfix/submission/smtpd[8]: connect from app1.int.example[10.0.1.11]
Nov 24 14:49:24 mx1 postfix/master[1]: reload -- version 3.7.11, configuration /etc/postfix
Nov 24 14:49:24 mx1 postfix/smtp[9]: warning: TLS library problem: error:0A000126:SSL routines::unexpected eof while reading
Nov 24 14:49:24 mx1 postfix/qmgr[9]: DA572164318: skipped, still being delivered
Nov 24 14:49:24 mx1 postfix/bounce[9]: warning: malformed request
Nov 24 14:49:24 mx1 CRON[3333]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)
Nov 24 14:49:24 mx1 sshd[4444]: Connection closed by 203.0.113.9 port 52344 [preauth]
Nov 24 14:49:24 mx1 kernel: [12345.678901] TCP: request_sock_TCP: Possible SYN flooding on port 25.
Nov 24 14:49:24 mx1 /usr/sbin/cron[5555]: (CRON) INFO (pidfile fd = 3)
-- Boot 4c1a7e1f2b6d4e3a9c8b7a6f5e4d3c2b --

"""  # noqa: E501


def test_noise_is_counted_never_emitted() -> None:
    events, parser = parse(NOISE)
    assert events == []
    stats = parser.stats
    assert (stats.inbound, stats.other, stats.non_postfix, stats.malformed) == (4, 4, 6, 0)


def test_damaged_lines_are_counted_and_never_fatal() -> None:
    good = RECIPE.splitlines()[2]
    damaged = [
        good[:120],  # cut after to=<, before status=
        good[: good.index("status=") + 20],  # cut inside the reply: no closing parenthesis
        good.replace("dsn=2.0.0", "d\ufffd\x1b[2Jn=2.0.0"),  # garbage bytes in a field
        "Nov 24 14:49:24 out05 postfix-out05/qmgr[1299]: DA572164318: from=<a@example.org>, si",
        "Nov 24 14:49:24 out05 postfix-out05/bounce[1]: E38DF164322: sender non-delivery notif"
        "ication: \x00",
        "Nov 24 14:49:24 out05 postfix-out05/sm",  # cut inside the syslog name
        "Nov 24 14:49:24 out05",  # cut inside the header
        "\x00\x00\x00\x00\ufffd\ufffd",  # what a crash leaves
        "Nov 99 14:49:24 out05 postfix-out05/qmgr[1299]: DA572164318: removed",  # bad stamp
        "2021-13-45T17:16:28Z h postfix/qmgr[1]: DA572164318: removed",
        good,  # and the stream goes on
    ]
    events, parser = parse("\n".join(damaged) + "\n")
    assert [e.queue_id for e in events] == ["D18FF16431A"]
    assert parser.malformed == len(damaged) - 1
    samples = parser.malformed_samples
    assert len(samples) == MAX_SAMPLES
    assert all(safe(s) for s in samples)
    assert "\\x1b" in samples[2]
    assert "\x1b" not in samples[2]
    assert "\\x00" in samples[4]


def test_counters_accumulate_over_calls_and_streams_are_lazy() -> None:
    parser = PostfixLogParser(ref=REF)
    read = 0

    def lines() -> object:
        nonlocal read
        for line in RECIPE.splitlines(keepends=True) * 2000:
            read += 1
            yield line

    stream = parser.parse(lines())  # type: ignore[arg-type]
    assert read == 0
    assert isinstance(next(stream), Attempt)
    assert read <= _SCAN_CHUNK + 1  # one chunk ahead at most: memory stays flat
    assert len(list(stream)) == 5 * 2000 - 1  # four attempts and a notice per five lines
    assert len(list(parser.parse(NOISE.splitlines()))) == 0
    assert list(parser.parse([])) == []
    assert read == 5 * 2000
    assert parser.lines == read + len(NOISE.splitlines())


@pytest.mark.parametrize("accelerated", [True, False])
def test_a_source_that_fails_midway_gives_every_line_read_before(accelerated: bool) -> None:
    """A truncated .gz raises in the middle of a chunk: the lines before it still count."""

    def lines() -> object:
        yield from RECIPE.splitlines(keepends=True)[:3]
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    parser = PostfixLogParser(ref=REF, accelerated=accelerated)
    got: list[Event] = []
    with pytest.raises(EOFError):
        got.extend(parser.parse(lines()))  # type: ignore[arg-type]
    assert [type(e) for e in got] == [Attempt, Attempt, Attempt]
    assert parser.lines == 3


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=20))
def test_arbitrary_text_never_raises(lines: list[str]) -> None:
    parser = PostfixLogParser(ref=REF)
    list(parser.parse(lines))
    assert parser.lines == len(lines)
    assert all(safe(s) for s in parser.malformed_samples)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(RECIPE)), st.text(max_size=40))
def test_any_cut_or_splice_of_a_real_log_never_raises(cut: int, junk: str) -> None:
    text = RECIPE[:cut] + junk + RECIPE[cut:]
    parser = PostfixLogParser(ref=REF)
    events = list(parser.parse(text.splitlines(keepends=True)))
    assert parser.lines == len(text.splitlines())
    assert len(events) <= 5 + 1
