"""The Postfix test fleet writes real log lines, and they agree with the simulators' ground truth.

These tests check the fixture (tests/servers/postfix.py), not inboxops: that what the reputation
monitor will be tested on has the shapes production logs have.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from tests.servers.postfix import PostfixFleet
from tests.servers.smtp_sim import GMAIL, SimEvent

SENDER = "news@example.net"
IP_OF = {"postfix-out05": "127.0.0.5", "postfix-out07": "127.0.0.7"}
# postlogd's prefix: "%b %d %H:%M:%S", the first label of myhostname, "name/service[pid]: "
PREFIX = re.compile(r"^[A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} (out05|out07) (postfix-out0[57])/")
DELIVERY = re.compile(
    r"^\w{3} \d{2} [\d:]{8} \S+ (?P<syslog>postfix-out0[57])/(?P<service>\w+)\[\d+\]: "
    r"(?P<qid>[0-9A-F]+): to=<(?P<rcpt>[^>]*)>, relay=(?P<relay>[^\[,]+)(?:\[[\d.]+\]:\d+)?, "
    r"(?:conn_use=\d+, )?delay=[\d.]+, delays=[\d./]+, dsn=(?P<dsn>\d\.\d+\.\d+), "
    r"status=(?P<status>\w+) \((?P<detail>.*)\)$"
)


@dataclass(frozen=True)
class Delivery:
    syslog: str
    service: str
    qid: str
    rcpt: str
    relay: str
    dsn: str
    status: str
    detail: str


def deliveries(fleet: PostfixFleet) -> list[Delivery]:
    out = []
    for line in fleet.log_lines(r": to=<"):
        match = DELIVERY.match(line)
        assert match, line
        out.append(Delivery(**match.groupdict()))
    return out


def expected_dsn(event: SimEvent) -> str:
    """What Postfix logs as dsn= for a reply: its enhanced code, else the class with .0.0."""
    match = re.match(r"\d{3}[ -](\d\.\d{1,3}\.\d{1,3}) ", event.text)
    return match.group(1) if match else f"{event.code // 100}.0.0"


def test_lines_have_the_postlogd_shape_and_both_syslog_names(
    postfix: PostfixFleet, tmp_path: Path
) -> None:
    postfix.send(SENDER, ["ok-1@gmail.com"], instance="out05")
    postfix.send(SENDER, ["ok-2@gmail.com"], instance="out07")
    assert postfix.wait_until_settled() == []

    lines = postfix.log_lines()
    assert lines
    for line in lines:
        assert PREFIX.match(line), line
    sent = {d.rcpt: d for d in deliveries(postfix)}
    assert sent["ok-1@gmail.com"].syslog == "postfix-out05"
    assert sent["ok-2@gmail.com"].syslog == "postfix-out07"
    for d in sent.values():
        assert (d.service, d.relay, d.status, d.dsn) == (
            "smtp",
            "gmail-smtp-in.l.google.com",
            "sent",
            "2.0.0",
        )
    # each instance connected from its own smtp_bind_address
    by_rcpt = {e.rcpt: e for e in postfix.ground_truth()}
    assert by_rcpt["ok-1@gmail.com"].client_ip == "127.0.0.5"
    assert by_rcpt["ok-2@gmail.com"].client_ip == "127.0.0.7"
    # smtpd injection and queue manager lines are there too, as in production
    text = postfix.log_text()
    assert re.search(r"postfix-out05/smtpd\[\d+\]: connect from localhost\[127\.0\.0\.1\]", text)
    assert re.search(r"postfix-out07/qmgr\[\d+\]: [0-9A-F]+: from=<news@example\.net>, size=", text)
    assert re.search(r"postfix-out05/qmgr\[\d+\]: [0-9A-F]+: removed", text)
    copy = postfix.copy_log(tmp_path / "mail.log")
    assert copy.read_text() == text


def test_every_scripted_answer_is_in_the_log_as_postfix_classifies_it(
    postfix: PostfixFleet,
) -> None:
    out05 = [
        "ok-a@gmail.com",
        "unknown-a@gmail.com",
        "auth-a@gmail.com",
        "block-a@outlook.com",
        "defer-a@yahoo.com",
        "unknown-a@yahoo.com",
        "block-a@icloud.com",
    ]
    out07 = [
        "block-b@example.com",
        "ok-b@hotmail.com",
        "block-b@comcast.net",
        "throttle-b@comcast.net",
        "auth-b@aol.com",
        "ok-b@example.org",
    ]
    for rcpt in out05:
        postfix.send(SENDER, [rcpt], instance="out05")
    postfix.send(SENDER, out07, instance="out07")  # one message, six domains
    left = postfix.wait_until_settled()
    assert sorted(r for m in left for r, _ in m.recipients) == [
        "defer-a@yahoo.com",
        "throttle-b@comcast.net",
    ]

    logged = {d.rcpt: d for d in deliveries(postfix) if d.rcpt != SENDER}
    truth = {e.rcpt: e for e in postfix.ground_truth() if e.mail_from == SENDER}
    assert set(logged) == set(truth) == set(out05 + out07)
    for address, event in truth.items():
        d = logged[str(address)]
        assert d.relay == event.host, address
        assert IP_OF[d.syslog] == event.client_ip, address
        assert d.dsn == expected_dsn(event), (address, d.dsn, event.text)
        status = {2: "sent", 4: "deferred", 5: "bounced"}[event.code // 100]
        assert d.status == status, address
        if status == "sent":
            assert d.detail == event.text
        else:
            stage = "end of DATA" if event.stage == "data" else "RCPT TO"
            host = f"{event.host}[{postfix.mx_addresses[event.host]}]"
            assert d.detail == f"host {host} said: {event.text} (in reply to {stage} command)"
    # multi-line replies reach the log flattened, continuation prefixes inline
    flattened = (
        "said: 550-5.1.1 The email account that you tried to reach does not exist. Please try "
        "550-5.1.1 double-checking"
    )
    assert flattened in logged["unknown-a@gmail.com"].detail
    assert logged["auth-a@gmail.com"].dsn == "5.7.26"
    assert logged["block-a@outlook.com"].detail.endswith("(in reply to RCPT TO command)")
    assert "(S3150)" in logged["block-a@outlook.com"].detail
    assert logged["unknown-a@yahoo.com"].dsn == "5.0.0"  # no enhanced code in the reply
    assert logged["throttle-b@comcast.net"].dsn == "4.0.0"
    assert not postfix.log_lines(r"warning|fatal|panic")


def test_a_throttled_recipient_is_delivered_when_the_queue_is_flushed(
    postfix: PostfixFleet,
) -> None:
    qid_yahoo = postfix.send(SENDER, ["throttle-1@yahoo.com"], instance="out05")
    qid_gmail = postfix.send(SENDER, ["throttle-2@gmail.com"], instance="out07")
    deferred = postfix.wait_until_settled()
    assert {m.queue_id for m in deferred} == {qid_yahoo, qid_gmail}
    first = {d.rcpt: d for d in deliveries(postfix)}
    assert first["throttle-1@yahoo.com"].status == "deferred"
    assert "421 4.7.0 [TSS04] Messages from 127.0.0.5 temporarily deferred" in (
        first["throttle-1@yahoo.com"].detail
    )
    assert first["throttle-2@gmail.com"].dsn == "4.7.28"
    assert "said: 421-4.7.28 [127.0.0.7      15]" in first["throttle-2@gmail.com"].detail

    postfix.flush()
    assert postfix.wait_until_settled() == []
    history = [(d.qid, d.status) for d in deliveries(postfix)]
    assert history.count((qid_yahoo, "deferred")) == 1
    assert history.count((qid_yahoo, "sent")) == 1
    assert history.count((qid_gmail, "sent")) == 1
    attempts = Counter((e.rcpt, e.code) for e in postfix.ground_truth())
    assert attempts == {
        ("throttle-1@yahoo.com", 421): 1,
        ("throttle-1@yahoo.com", 250): 1,
        ("throttle-2@gmail.com", 421): 1,
        ("throttle-2@gmail.com", 250): 1,
    }


def test_a_refused_greeting_is_logged_as_deferred_refused_to_talk(postfix: PostfixFleet) -> None:
    postfix.send(SENDER, ["anna@gmx.net"], instance="out05")
    [stuck] = postfix.wait_until_settled()
    assert stuck.recipients[0][0] == "anna@gmx.net"
    [d] = deliveries(postfix)
    assert (d.relay, d.status, d.dsn) == ("mx00.gmx.net", "deferred", "4.0.0")
    assert d.detail.startswith(
        f"host mx00.gmx.net[{postfix.mx_addresses['mx00.gmx.net']}] refused to talk to me: "
        "554-gmx.net (mxgmx116) Nemesis ESMTP Service not available 554-No SMTP service "
        "554-IP address is black listed. 554 For explanation visit "
    )
    [event] = postfix.ground_truth()
    assert (event.stage, event.rcpt, event.client_ip, event.final) == (
        "greeting",
        None,
        "127.0.0.5",
        False,
    )


def test_a_greeting_block_can_hit_one_sending_ip_only(postfix: PostfixFleet) -> None:
    postfix.sims.block_greeting("mx00.gmx.net", ["127.0.0.7"])
    postfix.send(SENDER, ["ben@gmx.net"], instance="out05")
    postfix.send(SENDER, ["carl@gmx.de"], instance="out07")
    postfix.wait_until_settled()
    status = {(d.syslog, d.rcpt): d.status for d in deliveries(postfix)}
    assert status == {
        ("postfix-out05", "ben@gmx.net"): "sent",
        ("postfix-out07", "carl@gmx.de"): "deferred",
    }


def test_bounces_send_the_sender_a_notification_that_is_delivered(postfix: PostfixFleet) -> None:
    qid = postfix.send(SENDER, ["unknown-9@gmail.com"], instance="out07")
    assert postfix.wait_until_settled() == []
    text = postfix.log_text()
    notice = re.search(
        rf"postfix-out07/bounce\[\d+\]: {qid}: sender non-delivery notification: ([0-9A-F]+)", text
    )
    assert notice, text
    nqid = notice.group(1)
    assert re.search(rf"postfix-out07/qmgr\[\d+\]: {nqid}: from=<>, size=\d+, nrcpt=1", text)
    [to_sender] = [d for d in deliveries(postfix) if d.qid == nqid]
    assert (to_sender.rcpt, to_sender.relay, to_sender.status) == (
        SENDER,
        "mx.example.net",
        "sent",
    )
    [landed] = [e for e in postfix.ground_truth() if e.mail_from == ""]
    assert (landed.rcpt, landed.host, landed.client_ip) == (SENDER, "mx.example.net", "127.0.0.7")
    assert landed.subject == "Undelivered Mail Returned to Sender"


def test_expired_messages_are_returned_to_sender(postfix: PostfixFleet) -> None:
    qid_defer = postfix.send(SENDER, ["defer-1@yahoo.com"], instance="out05")
    qid_gmx = postfix.send(SENDER, ["dora@gmx.net"], instance="out07")
    assert len(postfix.wait_until_settled()) == 2

    postfix.expire_deferred()
    assert postfix.wait_until_settled() == []
    text = postfix.log_text()
    for syslog, qid in (("postfix-out05", qid_defer), ("postfix-out07", qid_gmx)):
        assert re.search(
            rf"{syslog}/qmgr\[\d+\]: {qid}: from=<news@example\.net>, status=expired, "
            r"returned to sender$",
            text,
            re.MULTILINE,
        ), qid
        assert re.search(rf"{syslog}/bounce\[\d+\]: {qid}: sender non-delivery notification", text)
    # the attempt that failed before the expiry is logged as deferred, like the first one
    history = [(d.qid, d.status) for d in deliveries(postfix) if d.rcpt != SENDER]
    assert history.count((qid_defer, "deferred")) == 2
    assert history.count((qid_gmx, "deferred")) == 2
    yahoo = [e.code for e in postfix.ground_truth() if e.rcpt == "defer-1@yahoo.com"]
    assert yahoo == [421, 421]
    # the default lifetime is back: a new deferral is not expired
    postfix.send(SENDER, ["defer-2@yahoo.com"], instance="out05")
    postfix.flush()
    assert len(postfix.wait_until_settled()) == 1


def test_sendmail_injection_logs_pickup(postfix: PostfixFleet) -> None:
    postfix.sendmail(SENDER, ["ok-5@icloud.com"], instance="out07")
    assert postfix.wait_until_settled() == []
    assert re.search(
        r"postfix-out07/pickup\[\d+\]: [0-9A-F]+: uid=0 from=<news@example\.net>",
        postfix.log_text(),
    )
    [d] = deliveries(postfix)
    assert (d.relay, d.status) == ("mx01.mail.icloud.com", "sent")


def test_scripts_override_the_local_part_convention(postfix: PostfixFleet) -> None:
    postfix.script("vip@yahoo.com", ["throttle", "throttle", "accept"])
    postfix.send(SENDER, ["vip@yahoo.com"])
    postfix.wait_until_settled()
    postfix.flush()
    postfix.wait_until_settled()
    postfix.flush()
    assert postfix.wait_until_settled() == []
    assert [e.code for e in postfix.ground_truth()] == [421, 421, 250]
    assert [d.status for d in deliveries(postfix)] == ["deferred", "deferred", "sent"]


def test_a_reply_that_hangs_up_cuts_off_the_rest_of_the_transaction(
    postfix: PostfixFleet,
) -> None:
    closing = replace(GMAIL["throttle"], closes=True)
    postfix.script("first@gmail.com", [closing, "accept"])
    qid = postfix.send(SENDER, ["first@gmail.com", "second@gmail.com"])
    postfix.wait_until_settled()
    [first, second] = deliveries(postfix)
    assert (first.rcpt, first.dsn, first.status) == ("first@gmail.com", "4.7.28", "deferred")
    assert (second.rcpt, second.dsn, second.status) == ("second@gmail.com", "4.4.2", "deferred")
    assert second.detail.startswith("lost connection with gmail-smtp-in.l.google.com[")
    assert [e.rcpt for e in postfix.ground_truth()] == ["first@gmail.com"]

    postfix.flush()
    assert postfix.wait_until_settled() == []
    sent = {d.rcpt for d in deliveries(postfix) if d.qid == qid and d.status == "sent"}
    assert sent == {"first@gmail.com", "second@gmail.com"}


def test_retry_timers_can_be_made_fast_for_one_test(postfix: PostfixFleet) -> None:
    postfix.set_params(
        {"queue_run_delay": "1s", "minimal_backoff_time": "1s", "maximal_backoff_time": "2s"}
    )
    postfix.send(SENDER, ["throttle-4@yahoo.com"], instance="out07")
    deadline = time.monotonic() + 10
    while postfix.queue() and time.monotonic() < deadline:  # no flush: Postfix's own timer
        time.sleep(0.1)
    assert postfix.wait_until_settled() == []
    assert [d.status for d in deliveries(postfix)] == ["deferred", "sent"]
    assert not postfix.log_lines(r"warning|fatal|panic")
    postfix.reset()  # the next test gets the manual-retry settings back
    assert postfix["out07"].param("queue_run_delay") == "1h"


def test_each_test_starts_clean(postfix: PostfixFleet) -> None:
    postfix.send(SENDER, ["defer-7@yahoo.com", "ok-7@gmail.com"])
    postfix.wait_until_settled()
    assert postfix.log_text()
    assert postfix.ground_truth()

    postfix.reset()  # what the fixture does before every test
    assert postfix.queue() == []
    assert postfix.ground_truth() == []
    assert postfix.log_text() == ""
    postfix.send(SENDER, ["defer-7@yahoo.com"])  # attempt counts start again
    assert len(postfix.wait_until_settled()) == 1
    assert [e.attempt for e in postfix.ground_truth()] == [1]
