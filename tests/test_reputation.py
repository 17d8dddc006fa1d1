"""The reputation monitor on logs built line by line in Postfix's own shapes: edge cases
(year rollover, expiry, relay=none through DNS, stdin, gzip, truncation, kill -9), the alert
and health commands, and the SQL rollup against the in-memory oracle. The rules' boundaries
are in test_reputation_rules.py."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from inboxops.cli import root
from inboxops.cli.context import AppContext
from inboxops.reputation import rules
from tests.servers.dns import DnsServer

NOW = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
SENT = "dsn=2.0.0, status=sent (250 2.0.0 OK 1732 - gsmtp)"
THROTTLE = (
    "dsn=4.7.0, status=deferred (host mta5.am0.yahoodns.net[67.195.204.72] said: 421 4.7.0 "
    "[TSS04] Messages from 198.51.100.5 temporarily deferred due to unexpected volume or user "
    "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes (in reply to MAIL "
    "FROM command))"
)
BLOCK = (
    "dsn=5.7.1, status=bounced (host outlook-com.olc.protection.outlook.com[104.47.57.161] said: "
    "550 5.7.1 Unfortunately, messages from [198.51.100.5] weren't sent. Please contact your "
    "Internet service provider since part of their network is on our block list (S3150). (in "
    "reply to MAIL FROM command))"
)
RELAY = {
    "gmail.com": "gmail-smtp-in.l.google.com[142.250.1.27]:25",
    "yahoo.com": "mta5.am0.yahoodns.net[67.195.204.72]:25",
    "outlook.com": "outlook-com.olc.protection.outlook.com[104.47.57.161]:25",
}


class Log:
    """Lines as Postfix writes them (traditional syslog stamps, one host)."""

    def __init__(self, host: str = "out05") -> None:
        self.host = host
        self.lines: list[str] = []
        self.n = 0

    def stamp(self, when: datetime) -> str:
        return f"{when:%b} {when.day:2d} {when:%H:%M:%S}"

    def qid(self) -> str:
        self.n += 1
        return f"{0xA1B2C3D4 + self.n:X}"

    def message(
        self,
        when: datetime,
        rcpt: str,
        outcome: str = SENT,
        *,
        name: str = "postfix-out05",
        sender: str = "news@example.net",
        relay: str | None = None,
        qid: str | None = None,
    ) -> str:
        qid = qid or self.qid()
        domain = rcpt.rpartition("@")[2]
        relay = relay or RELAY.get(domain, f"mx.{domain}[192.0.2.1]:25")
        pre = f"{self.stamp(when)} {self.host} {name}"
        self.lines += [
            f"{pre}/smtpd[100]: connect from localhost[127.0.0.1]",
            f"{pre}/cleanup[101]: {qid}: message-id=<{qid}@example.net>",
            f"{pre}/qmgr[102]: {qid}: from=<{sender}>, size=1500, nrcpt=1 (queue active)",
            f"{pre}/smtp[103]: {qid}: to=<{rcpt}>, relay={relay}, delay=1.2, "
            f"delays=0.1/0/0.5/0.6, {outcome}",
        ]
        return qid

    def attempt(
        self,
        when: datetime,
        qid: str,
        rcpt: str,
        outcome: str,
        relay: str,
        name: str = "postfix-out05",
    ) -> None:
        self.lines.append(
            f"{self.stamp(when)} {self.host} {name}/smtp[103]: {qid}: to=<{rcpt}>, relay={relay}, "
            f"delay=5, delays=4/0/0.5/0.5, {outcome}"
        )

    def raw(self, line: str) -> None:
        self.lines.append(line)

    def write(self, path: Path) -> Path:
        text = "\n".join(self.lines) + "\n"
        if path.suffix == ".gz":
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
        return path


def run(
    args: list[str], env: dict[str, str] | None = None, stdin: str | None = None
) -> tuple[int, object, str]:
    result = CliRunner().invoke(root, args, env=env, input=stdin, obj=AppContext(clock=lambda: NOW))
    try:
        return result.exit_code, json.loads(result.stdout), result.stderr
    except ValueError:
        return result.exit_code, result.stdout, result.stderr


def trend(db: str, *args: str) -> list[dict[str, object]]:
    code, rows, _ = run(
        [
            "--db",
            db,
            "reputation",
            "trend",
            "--json",
            "--since",
            "2025-12-01",
            "--until",
            "2026-12-31",
            *args,
        ]
    )
    assert code == 0
    return rows  # type: ignore[return-value]


# -- input forms and edge cases --------------------------------------------------------------


def test_year_rollover_gzip_stdin_and_garbage(sqlite_url: str, tmp_path: Path) -> None:
    log = Log()
    log.message(datetime(2025, 12, 31, 23, 59, 58, tzinfo=UTC), "a@gmail.com")
    log.raw("Dec 31 23:59:59 out05 postfix-out05/smtp[103]: 9F1E: to=<cut@gmail.com>, relay=gm")
    log.raw("\x00\x1b[2J garbage that is not a syslog line")
    log.message(datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC), "b@gmail.com")
    path = log.write(tmp_path / "newyear.log.gz")
    os.utime(path, (datetime(2026, 1, 2, tzinfo=UTC).timestamp(),) * 2)
    code, out, err = run(["--db", sqlite_url, "reputation", "ingest", "--json", str(path)])
    assert code == 0, err
    assert (out["counted"], out["malformed"]) == (2, 2)  # type: ignore[index]
    assert "\x1b" not in err
    days = {(r["date"], r["attempts"]) for r in trend(sqlite_url)}
    assert days == {("2025-12-31", 1), ("2026-01-01", 1)}
    # the same from stdin with an explicit year: nothing new
    text = gzip.decompress(path.read_bytes()).decode()
    code, out, _ = run(
        ["--db", sqlite_url, "reputation", "ingest", "--year", "2025", "--json", "-"], stdin=text
    )
    assert (code, out["new"], out["known"]) == (0, 0, 2)  # type: ignore[index]


def test_truncated_gzip_keeps_what_was_read_and_says_so(sqlite_url: str, tmp_path: Path) -> None:
    log = Log()
    base = datetime(2026, 11, 20, 10, tzinfo=UTC)
    for i in range(300):
        log.message(base + timedelta(seconds=i), f"u{i}@gmail.com")
    whole = log.write(tmp_path / "full.log.gz").read_bytes()
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    code, out, _err = run(["--db", sqlite_url, "reputation", "ingest", "--json", str(cut)])
    assert code == 3
    assert out["failed"][0]["source"].endswith("cut.log.gz")  # type: ignore[index]
    assert 0 < out["counted"] < 300  # type: ignore[index]
    code, out, _ = run(
        ["--db", sqlite_url, "reputation", "ingest", "--json", str(tmp_path / "full.log.gz")]
    )
    assert code == 0
    assert out["new"] + out["known"] == 300  # type: ignore[index]
    assert sum(r["attempts"] for r in trend(sqlite_url)) == 300


def test_expiry_is_attributed_to_each_pending_recipient(db_url: str, tmp_path: Path) -> None:
    """qmgr's status=expired has no recipient: it expires the still-pending ones of its
    message, counted for the IP and operator of their last attempt, on the day of the expiry;
    a recipient already delivered stays delivered. Order of files does not matter."""
    t0 = datetime(2026, 11, 20, 9, tzinfo=UTC)
    attempts = Log()
    qid = attempts.qid()
    pre = f"{attempts.stamp(t0)} out05 postfix-out05"
    attempts.raw(
        f"{pre}/qmgr[102]: {qid}: from=<news@example.net>, size=1500, nrcpt=3 (queue active)"
    )
    for rcpt in ("p1@yahoo.com", "p2@yahoo.com", "ok@yahoo.com"):
        attempts.attempt(t0, qid, rcpt, THROTTLE, RELAY["yahoo.com"])
    attempts.attempt(t0 + timedelta(hours=1), qid, "ok@yahoo.com", SENT, RELAY["yahoo.com"])
    expiry = Log()
    t1 = t0 + timedelta(days=5)
    expiry.raw(
        f"{expiry.stamp(t1)} out05 postfix-out05/qmgr[102]: {qid}: from=<news@example.net>, "
        "status=expired, returned to sender"
    )
    a, e = attempts.write(tmp_path / "a.log"), expiry.write(tmp_path / "e.log")
    for path in (e, a):  # the expiry first: it must still apply
        os.utime(path, (datetime(2026, 11, 26, tzinfo=UTC).timestamp(),) * 2)
        run(["--db", db_url, "reputation", "ingest", str(path)])
    rows = {r["date"]: r for r in trend(db_url)}
    assert rows["2026-11-20"]["delivered"] == 1
    assert rows["2026-11-20"]["pending"] == 0
    assert rows["2026-11-25"]["expired"] == 2
    assert rows["2026-11-25"]["operator"] == "yahoo"
    assert rows["2026-11-20"]["attempts"] == 4
    assert rows["2026-11-20"]["throttled"] == 3


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_retries_and_expiries_count_the_same_whatever_order_the_files_come_in(
    db_url: str, tmp_path: Path, order: tuple[int, ...]
) -> None:
    """Three days of one queue's story cut into three files, ingested in every order: a
    retry that succeeds is delivered, one that bounces is bounced, one still waiting is
    pending, an expired message's waiting recipient is expired, and a queue id Postfix reused
    a week later for the same address is a second message (two outcomes, not one)."""
    t0 = datetime(2026, 11, 10, 9, tzinfo=UTC)
    day = timedelta(days=1)
    logs = [Log(), Log(), Log()]
    qid = "B7C1D2E3F4A"
    reused = "C8D2E3F4A5B"
    start = f"{logs[0].stamp(t0)} out05 postfix-out05/qmgr[102]: {qid}: from=<news@example.net>"
    logs[0].raw(f"{start}, size=1500, nrcpt=4 (queue active)")
    for rcpt in ("later@yahoo.com", "bounce@yahoo.com", "waits@yahoo.com", "gone@gmail.com"):
        logs[0].attempt(t0, qid, rcpt, THROTTLE, RELAY["yahoo.com"])
    logs[0].message(t0, "again@gmail.com", qid=reused)  # delivered at once
    logs[1].attempt(t0 + day, qid, "later@yahoo.com", SENT, RELAY["yahoo.com"])
    logs[1].attempt(t0 + day, qid, "bounce@yahoo.com", BLOCK, RELAY["outlook.com"])
    logs[1].attempt(t0 + day, qid, "waits@yahoo.com", THROTTLE, RELAY["yahoo.com"])
    logs[2].raw(
        f"{logs[2].stamp(t0 + 2 * day)} out05 postfix-out05/qmgr[102]: {qid}: "
        "from=<news@example.net>, status=expired, returned to sender"
    )
    # the reused queue id, eight days on: deferred, for the same address
    logs[2].message(t0 + 8 * day, "again@gmail.com", THROTTLE, qid=reused)
    paths = [log.write(tmp_path / f"mail.log.{i}") for i, log in enumerate(logs)]
    for i in order:
        os.utime(paths[i], (datetime(2026, 11, 24, tzinfo=UTC).timestamp(),) * 2)
        code, _, err = run(["--db", db_url, "reputation", "ingest", str(paths[i])])
        assert code == 0, err
    rows = trend(db_url)
    total = {
        name: sum(int(r[name]) for r in rows)  # type: ignore[call-overload]
        for name in ("delivered", "bounced", "expired", "pending", "attempts", "deferrals")
    }
    assert total == {
        "delivered": 2,  # later@ on day 2, again@ on day 1
        "bounced": 1,
        "expired": 2,  # waits@ and gone@: still deferred when the message expired
        "pending": 1,  # again@'s second message
        "attempts": 9,
        "deferrals": 6,
    }
    by = {(r["date"], r["operator"]): r for r in rows}
    assert by[("2026-11-12", "yahoo")]["expired"] == 2  # the expiry's day, the last attempt's
    assert by[("2026-11-11", "yahoo")]["delivered"] == 1
    assert by[("2026-11-10", "google")]["delivered"] == 1
    assert by[("2026-11-18", "google")]["pending"] == 1
    assert by[("2026-11-10", "yahoo")]["pending"] == 0


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_a_reused_queue_ids_later_expiry_does_not_move_an_earlier_one(
    db_url: str, tmp_path: Path, order: tuple[int, ...]
) -> None:
    """Postfix reused a queue id after the first message expired, and the second message
    expired too: the first message's recipient expired when the first message did (the
    earliest expiry at or after its last attempt), not when the second did."""
    t0 = datetime(2026, 11, 10, 9, tzinfo=UTC)
    day = timedelta(days=1)
    qid = "D9E3F4A5B6C"
    logs = [Log(), Log()]

    def expiry(log: Log, when: datetime) -> None:
        log.raw(
            f"{log.stamp(when)} out05 postfix-out05/qmgr[102]: {qid}: "
            "from=<news@example.net>, status=expired, returned to sender"
        )

    logs[0].message(t0, "first@yahoo.com", THROTTLE, qid=qid)
    expiry(logs[0], t0 + 2 * day)
    logs[1].message(t0 + 8 * day, "second@gmail.com", THROTTLE, qid=qid)
    expiry(logs[1], t0 + 11 * day)
    paths = [log.write(tmp_path / f"mail.log.{i}") for i, log in enumerate(logs)]
    for i in order:
        code, _, err = run(["--db", db_url, "reputation", "ingest", str(paths[i])])
        assert code == 0, err
    expired = {(r["date"], r["operator"]) for r in trend(db_url) if int(r["expired"])}
    assert expired == {("2026-11-12", "yahoo"), ("2026-11-21", "google")}
    # the in-memory aggregator (--dry-run) counts by the same rule
    from inboxops.config import ReputationSettings
    from inboxops.operators.classify import Classifier
    from inboxops.reputation.ingest import ReputationIngestor

    ingestor = ReputationIngestor(ReputationSettings(), None, Classifier())
    ingestor.ingest([str(paths[i]) for i in order])
    assert ingestor.aggregator is not None
    figures = ingestor.aggregator.figures()
    assert {(str(k[0]), k[2]) for k, f in figures.items() if f.expired} == expired


def test_relay_none_attempts_take_the_operator_from_the_domains_mx(
    dns_server: DnsServer, sqlite_url: str, tmp_path: Path
) -> None:
    dns_server.zone.set_mx("example.com", [(10, "example-com.mail.protection.outlook.com")])
    dns_server.zone.set_mx("broken.example", [(0, "mx.broken.example")])
    dns_server.zone.servfail("broken.example")
    log = Log()
    t = datetime(2026, 11, 21, 8, tzinfo=UTC)
    log.message(
        t,
        "x@example.com",
        "dsn=4.4.1, status=deferred (connect to "
        "example-com.mail.protection.outlook.com[52.101.0.1]:25: Connection timed out)",
        relay="none",
    )
    log.message(
        t,
        "y@broken.example",
        "dsn=4.4.4, status=deferred (Host or domain name not found. Name service error for "
        "name=broken.example type=MX: Host not found, try again)",
        relay="none",
    )
    path = log.write(tmp_path / "none.log")
    env = {"INBOXOPS_DNS_NAMESERVERS": dns_server.nameserver}
    code, out, _ = run(["--db", sqlite_url, "reputation", "ingest", "--json", str(path)], env)
    assert (code, out["dns_lookups"]) == (0, 2)  # type: ignore[index]
    rows = {r["operator"]: r for r in trend(sqlite_url)}
    assert rows["microsoft"]["segment"] == "365"
    assert rows["microsoft"]["pending"] == 1
    assert rows["unknown"]["pending"] == 1  # SERVFAIL: no operator can be decided, none invented
    before = dns_server.query_count
    run(["--db", sqlite_url, "reputation", "ingest", str(path)], env)
    assert dns_server.query_count == before  # the MX answers came from the cache
    code, out, _ = run(
        [
            "--db",
            f"sqlite:///{tmp_path / 'off.db'}",
            "reputation",
            "ingest",
            "--offline",
            "--json",
            str(path),
        ]
    )
    assert out["dns_lookups"] == 0  # type: ignore[index]


def test_exclusions_are_counted_not_reported(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        '[reputation]\ninternal_domains = ["int.example"]\nprobe_prefixes = ["seed-"]\n'
    )
    log = Log()
    t = datetime(2026, 11, 22, 8, tzinfo=UTC)
    log.message(t, "real@gmail.com")
    log.message(t, "ops@int.example")
    log.message(t, "ops@mail.int.example")
    log.message(t, "seed-7@gmail.com")
    log.message(t, "news@example.net", sender="")  # a bounce notification
    bounce = log.message(
        t,
        "gone@gmail.com",
        BLOCK.replace(
            "outlook-com.olc.protection.outlook.com[104.47.57.161]",
            "gmail-smtp-in.l.google.com[142.250.1.27]",
        ),
    )
    log.raw(
        f"{log.stamp(t)} out05 postfix-out05/bounce[104]: {bounce}: sender non-delivery "
        "notification: FEED01"
    )
    log.raw(
        f"{log.stamp(t)} out05 postfix-out05/smtp[103]: FEED01: to=<news@example.net>, "
        "relay=mx.example.net[192.0.2.9]:25, delay=0.1, delays=0/0/0/0, dsn=2.0.0, status=sent "
        "(250 ok)"
    )
    log.raw(
        f"{log.stamp(t)} out05 postfix-out05/lmtp[105]: ABCDEF1: to=<me@example.net>, "
        "relay=mail.example.net[private/dovecot-lmtp], delay=0.1, delays=0/0/0/0, dsn=2.0.0, "
        "status=sent (250 2.0.0 Ok)"
    )
    log.raw(
        f"{log.stamp(t)} out05 postfix-out05/smtp[103]: ABCDEF2: to=<x@gmail.com>, "
        "relay=127.0.0.1[127.0.0.1]:10024, delay=0.1, delays=0/0/0/0, dsn=2.0.0, status=sent "
        "(250 2.0.0 Ok: queued)"
    )
    log.raw(
        f"{log.stamp(t)} out05 postfix-out05/postscreen[106]: CONNECT from [203.0.113.9]:4242 to "
        "[192.0.2.5]:25"
    )
    path = log.write(tmp_path / "ex.log")
    _code, out, _ = run(
        [
            "--config",
            str(tmp_path / "c.toml"),
            "--db",
            sqlite_url,
            "reputation",
            "ingest",
            "--json",
            str(path),
        ]
    )
    assert out["counted"] == 2  # type: ignore[index]
    assert out["excluded"] == {  # type: ignore[index]
        "notices": 2,
        "local": 1,
        "internal_relays": 1,
        "internal": 2,
        "probes": 1,
        "no_recipient": 0,
    }
    assert out["inbound"] >= 2  # type: ignore[index]
    assert sum(r["attempts"] for r in trend(sqlite_url)) == 2


def test_kill_9_mid_ingest_then_rerun_equals_one_clean_run(db_url: str, tmp_path: Path) -> None:
    from inboxops.demo.maillog import write_maillog

    path = tmp_path / "fleet.log"
    write_maillog(path, lines=120_000, seed=11, start=datetime(2026, 11, 10, tzinfo=UTC), days=5)
    env = {**os.environ, "INBOXOPS_DB": db_url}
    clean_db = f"sqlite:///{tmp_path / 'clean.db'}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "inboxops",
            "--db",
            clean_db,
            "reputation",
            "ingest",
            "--offline",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    # small batches, so the kill lands between committed batches
    code = (
        "import sys; from inboxops.cli import main; import inboxops.reputation.ingest as i; "
        "i.BATCH = 2000; sys.argv = ['inboxops', 'reputation', 'ingest', '--offline', "
        "sys.argv[1]]; main()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    rerun = subprocess.run(
        [
            sys.executable,
            "-m",
            "inboxops",
            "reputation",
            "ingest",
            "--offline",
            "--json",
            str(path),
        ],
        env=env,
        capture_output=True,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr.decode()[-500:]
    assert trend(db_url) == trend(clean_db)


# -- the commands: silence, alerts, repeats, history ---------------------------------------


def week_log(tmp_path: Path, *, blocks_today: int, delivered_today: int = 100) -> Path:
    """Seven quiet days to Microsoft from one IP, then a day with ``blocks_today`` blocks."""
    log = Log()
    start = datetime(2026, 11, 17, 9, tzinfo=UTC)  # 17th..23rd quiet, the 24th judged
    for d in range(8):
        day = start + timedelta(days=d)
        ok = delivered_today if d == 7 else 100
        for i in range(ok):
            log.message(day + timedelta(seconds=i), f"u{d}-{i}@outlook.com")
        for i in range(blocks_today if d == 7 else 2):
            log.message(day + timedelta(seconds=500 + i), f"b{d}-{i}@outlook.com", BLOCK)
    return log.write(tmp_path / "week.log")


def test_alert_names_ip_operator_baseline_and_a_real_reply(
    db_url: str, tmp_path: Path, telegram_server: object
) -> None:
    path = week_log(tmp_path, blocks_today=30)
    (tmp_path / "c.toml").write_text(
        '[reputation.senders]\n"postfix-out05/smtp" = "198.51.100.5"\n'
    )
    base = ["--config", str(tmp_path / "c.toml"), "--db", db_url]
    run([*base, "reputation", "ingest", str(path)])
    code, alerts, _ = run([*base, "reputation", "alert", "--date", "2026-11-23", "--json"])
    assert (code, alerts) == (0, [])  # a quiet day: silent
    code, alerts, _ = run(
        [*base, "reputation", "alert", "--date", "2026-11-24", "--dry-run", "--json"]
    )
    assert code == 3
    kinds = {a["kind"] for a in alerts}  # type: ignore[union-attr]
    assert rules.POLICY_BLOCKS in kinds
    blocks = next(a for a in alerts if a["kind"] == rules.POLICY_BLOCKS)  # type: ignore[union-attr]
    assert (blocks["sending_ip"], blocks["operator"]) == ("198.51.100.5", "microsoft")
    assert blocks["today"]["policy_blocked"] == 30
    assert blocks["baseline"]["policy_blocked"] == 14
    assert "S3150" in blocks["sample_reply"]


def test_alerts_are_sent_once_then_repeat_only_when_due(
    sqlite_url: str, tmp_path: Path, telegram_server: object
) -> None:
    from tests.servers.telegram import TelegramDouble

    assert isinstance(telegram_server, TelegramDouble)
    env = telegram_server.env()
    path = week_log(tmp_path, blocks_today=30)
    run(["--db", sqlite_url, "reputation", "ingest", str(path)], env)
    args = ["--db", sqlite_url, "reputation", "alert", "--date", "2026-11-24"]
    assert run(args, env)[0] == 3
    assert len(telegram_server.messages) == 1
    assert "postfix-out05/smtp -&gt; microsoft" in telegram_server.messages[0]
    assert run(args, env)[0] == 3  # still wrong, but said an hour ago: not sent again
    assert len(telegram_server.messages) == 1


def test_health_is_silent_when_healthy_records_every_run_and_alerts_when_not(
    sqlite_url: str, tmp_path: Path
) -> None:
    path = week_log(tmp_path, blocks_today=151, delivered_today=300)
    run(["--db", sqlite_url, "reputation", "ingest", str(path)])
    code, out, err = run(["--db", sqlite_url, "health", "--date", "2026-11-23"])
    assert (code, out, err) == (0, "", "")  # silent under cron
    code, out, _ = run(["--db", sqlite_url, "health", "--date", "2026-11-24"])
    assert code == 3
    assert "151 policy blocks" in str(out)
    code, report, _ = run(["--db", sqlite_url, "health", "--date", "2026-11-24", "--json"])
    [pool] = report["pools"]  # type: ignore[index]
    assert (pool["pool"], pool["policy_blocked"], pool["policy_blocked_550_571"]) == (
        "all",
        151,
        151,
    )
    assert report["alerts"]  # type: ignore[index]
    code, history, _ = run(["--db", sqlite_url, "health", "history", "--days", "30", "--json"])
    assert [(h["date"], h["healthy"]) for h in history] == [  # type: ignore[union-attr]
        ("2026-11-24", False),
        ("2026-11-24", False),
        ("2026-11-23", True),
    ]
    code, _, err = run(["--db", sqlite_url, "health", "--pool", "nope"])
    assert code == 2
    assert "unknown pool" in err


def test_the_sql_rollup_equals_the_in_memory_oracle(db_url: str, tmp_path: Path) -> None:
    """Two implementations of the same definitions (SQL, incremental and idempotent; Python,
    one pass) must agree on every figure of a generated fleet log, in several batches."""
    from sqlalchemy import select

    from inboxops.config import ReputationSettings, Settings
    from inboxops.demo.maillog import write_maillog
    from inboxops.operators.classify import Classifier
    from inboxops.operators.domains import domain_classifier
    from inboxops.reputation.aggregate import Aggregator
    from inboxops.reputation.collect import Collector, Exclusions
    from inboxops.reputation.ingest import ReputationIngestor
    from inboxops.reputation.parse import PostfixLogParser
    from inboxops.reputation.store import COUNTERS, ReputationStore
    from inboxops.storage.db import open_database
    from inboxops.storage.models import rep_daily

    path = tmp_path / "fleet.log"
    write_maillog(path, lines=80_000, seed=5, start=datetime(2026, 11, 1, tzinfo=UTC), days=6)
    rep = ReputationSettings(internal_domains=("int.example",), probe_prefixes=("seed-",))
    collector = Collector(Exclusions(rep.internal_domains, rep.probe_prefixes), Classifier())
    oracle = Aggregator()
    ref = datetime(2026, 11, 8, tzinfo=UTC)
    with path.open() as fh:
        for n, event in enumerate(
            PostfixLogParser().parse((ln.rstrip("\n") for ln in fh), ref=ref)
        ):
            collector.feed(event)
            if n % 7000 == 0:
                oracle.add(collector.take())
    oracle.add(collector.take())
    want = {
        (d.isoformat(), name, op or "unknown", seg): f
        for (d, name, op, seg), f in oracle.figures().items()
    }
    engine = open_database(db_url)
    domains = domain_classifier(engine, Settings(), offline=True)
    os.utime(path, (ref.timestamp(),) * 2)
    store = ReputationStore(engine, domains, offline=True)
    ReputationIngestor(rep, store, Classifier(), batch=3000).ingest([str(path)])
    with engine.connect() as conn:
        rows = conn.execute(select(rep_daily)).all()
    engine.dispose()
    got = {
        (str(r.day), r.syslog_name, r.operator, r.segment): tuple(getattr(r, c) for c in COUNTERS)
        for r in rows
    }
    assert set(got) == set(want)
    for key, f in want.items():
        assert got[key] == tuple(getattr(f, c) for c in COUNTERS), key


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_log_read_by_several_processes_gives_the_same_figures(
    sqlite_url: str, tmp_path: Path, dry_run: bool
) -> None:
    """A big plain log is split into byte ranges read in parallel; notices, retries and
    expiries that cross a range boundary must come out exactly as in one sequential read."""
    from inboxops.config import ReputationSettings, Settings
    from inboxops.demo.maillog import write_maillog
    from inboxops.operators.classify import Classifier
    from inboxops.operators.domains import domain_classifier
    from inboxops.reputation.ingest import ReputationIngestor
    from inboxops.reputation.store import ReputationStore
    from inboxops.storage.db import open_database

    path = tmp_path / "fleet.log"
    write_maillog(path, lines=60_000, seed=9, start=datetime(2026, 11, 3, tzinfo=UTC), days=4)
    rep = ReputationSettings(internal_domains=("int.example",), probe_prefixes=("seed-",))

    def run_once(db: str, min_bytes: int) -> object:
        if dry_run:
            ingestor = ReputationIngestor(rep, None, Classifier(), parallel_min_bytes=min_bytes)
            result = ingestor.ingest([str(path)])
            assert ingestor.aggregator is not None
            return (
                result.counted,
                result.excluded,
                sorted((k, vars(f)) for k, f in ingestor.aggregator.figures().items()),
            )
        engine = open_database(db)
        store = ReputationStore(
            engine, domain_classifier(engine, Settings(), offline=True), offline=True
        )
        result = ReputationIngestor(rep, store, Classifier(), parallel_min_bytes=min_bytes).ingest(
            [str(path)]
        )
        engine.dispose()
        return result.counted, result.lines, trend(db)

    parallel_db = f"sqlite:///{tmp_path / 'parallel.db'}"
    assert run_once(parallel_db, 0) == run_once(sqlite_url, 10**12)


def _fleet_log(tmp_path: Path) -> Path:
    from inboxops.demo.maillog import write_maillog

    path = tmp_path / "fleet.log"
    write_maillog(path, lines=40_000, seed=4, start=datetime(2026, 11, 3, tzinfo=UTC), days=3)
    os.utime(path, (datetime(2026, 11, 24, tzinfo=UTC).timestamp(),) * 2)
    return path


def test_readers_started_before_the_database_opens_give_the_same_figures(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reputation ingest` starts a big log's readers before it opens the database; their
    rows are staged for that database (text stamps on SQLite, timestamps on PostgreSQL). The
    figures equal a one-process read's, and so does a SQLite file whose name merely starts like
    a PostgreSQL URL (the readers' rows are staged again for the right database)."""
    import multiprocessing

    from inboxops.reputation import parallel

    path = _fleet_log(tmp_path)
    monkeypatch.setattr(parallel, "MIN_BYTES", 10**12)
    one = f"sqlite:///{tmp_path / 'one.db'}"
    assert run(["--db", one, "reputation", "ingest", "--offline", str(path)])[0] == 0
    want = trend(one)
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    code, out, err = run(
        ["-v", "--db", db_url, "reputation", "ingest", "--json", "--offline", str(path)]
    )
    assert code == 0, err
    assert "event=log_readers_early" in err  # the readers started early were the ones used
    assert trend(db_url) == want
    assert out["new"] == sum(int(r["attempts"]) for r in want) > 1000  # type: ignore[index]
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["-v", "--db", "postgres-archive.db", "reputation", "ingest", str(path)])
    assert code == 0, err
    assert "event=log_readers_early" not in err  # staged for PostgreSQL: read again
    assert trend(f"sqlite:///{tmp_path / 'postgres-archive.db'}") == want
    assert not multiprocessing.active_children()


def test_a_database_that_cannot_open_stops_the_early_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    from inboxops.reputation import parallel

    path = _fleet_log(tmp_path)
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    code, _, err = run(
        ["--db", "postgresql://nobody@127.0.0.1:1/none", "reputation", "ingest", str(path)]
    )
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert not multiprocessing.active_children()
