"""`dmarc fetch` on a real Dovecot: \\Seen only after commit, reconnects, kill -9, mixed mail,
batches (bounded by count and bytes, round trips counted by a proxy), backfill from a folder."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from inboxops.cli import root
from inboxops.config import Limits, Secret
from inboxops.dmarc.dryrun import DryRunSink
from inboxops.dmarc.fetch import fetch_reports
from inboxops.dmarc.imap_batch import (
    BatchLimits,
    parse_bodies,
    parse_sizes,
    plan_batch,
    uid_set,
    uid_sets,
)
from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.store import DatabaseSink
from inboxops.errors import ImapError, StorageError
from inboxops.storage.db import open_database
from inboxops.storage.models import dmarc_reports, failure_reports, quarantine, tls_reports
from tests.helpers import aggregate_xml, allow_writes, refuse_writes_operationally
from tests.servers.dovecot import PASSWORD, CuttingProxy, Dovecot

SEEN = "\\Seen"


def report_mail(n: int, *, org: str = "google.com") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"noreply-dmarc@{org}"
    msg["To"] = "dmarc@example.com"
    msg["Subject"] = f"Report domain: example.com Submitter: {org} Report-ID: r{n}"
    msg["Message-ID"] = f"<report-{n}@{org}>"
    msg.set_content("DMARC aggregate report attached.")
    data = aggregate_xml(org=org, report_id=f"r{n}", rows=[(f"192.0.2.{n % 250 + 1}", 3, True)])
    msg.add_attachment(
        gzip.compress(data),
        maintype="application",
        subtype="gzip",
        filename=f"{org}!example.com!1763856000!1763942399!r{n}.xml.gz",
    )
    return msg.as_bytes()


def ordinary_mail(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "colleague@example.com"
    msg["Subject"] = f"lunch {n}"
    msg["Message-ID"] = f"<ordinary-{n}@example.com>"
    msg.set_content("Shall we?")
    return msg.as_bytes()


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def ingestor(engine: Engine) -> Ingestor:
    return Ingestor(DatabaseSink(engine), Limits())


def test_unseen_by_default_all_on_request(dovecot: Dovecot, engine: Engine) -> None:
    dovecot.append(report_mail(1))
    dovecot.append(report_mail(2), flags=SEEN)
    stats = fetch_reports(dovecot.settings(), ingestor(engine))
    assert (stats.messages_seen, stats.ingest.reports_new) == (1, 1)
    stats = fetch_reports(dovecot.settings(), ingestor(engine), all_messages=True)
    assert (stats.messages_seen, stats.ingest.reports_new, stats.ingest.reports_known) == (2, 1, 1)
    assert count(engine, dmarc_reports) == 2
    engine.dispose()


def test_corpus_mails_and_mixed_mailbox_with_archive(
    dovecot: Dovecot, engine: Engine, corpus: Path
) -> None:
    mails = [
        corpus / "aggregate/twilight.eml",
        corpus / "aggregate/mimecast-weird-gzip.eml",
        corpus / "failure/dmarc_ruf_report_linkedin.eml",
        corpus / "smtp_tls/google.com_smtp_tls_report.eml",
    ]
    for path in mails:
        dovecot.append(path.read_bytes())
    dovecot.append(ordinary_mail(1))
    dovecot.append(ordinary_mail(2))
    settings = dovecot.settings(archive_folder="DMARC/Processed")
    stats = fetch_reports(settings, ingestor(engine))
    assert stats.messages_seen == 6
    assert stats.messages_skipped_not_report == 2
    assert (stats.messages_flagged, stats.messages_moved) == (4, 4)
    assert stats.ingest.reports_new == 2
    assert (stats.ingest.failure_reports_new, stats.ingest.tls_reports_new) == (1, 1)
    inbox = dovecot.flags("INBOX")
    assert set(inbox) == {"<ordinary-1@example.com>", "<ordinary-2@example.com>"}
    assert all(SEEN not in flags for flags in inbox.values())  # ordinary mail untouched
    archived = dovecot.flags("DMARC.Processed")  # Dovecot Maildir++ spells the path with "."
    assert len(archived) == 4
    assert all(SEEN in flags for flags in archived.values())
    assert (count(engine, failure_reports), count(engine, tls_reports)) == (1, 1)
    engine.dispose()


def test_unparseable_report_is_quarantined_and_flagged(dovecot: Dovecot, engine: Engine) -> None:
    msg = EmailMessage()
    msg["Subject"] = "Report domain: example.com Submitter: broken.example"
    msg["Message-ID"] = "<broken@example>"
    msg.set_content("report")
    msg.add_attachment(
        b"\x1f\x8b\x08\x00" + b"\x00" * 40,
        maintype="application",
        subtype="gzip",
        filename="broken.example!example.com!1763856000!1763942399.xml.gz",
    )
    dovecot.append(msg.as_bytes())
    stats = fetch_reports(dovecot.settings(), ingestor(engine))
    assert stats.ingest.quarantined == 1
    assert SEEN in dovecot.flags()["<broken@example>"]  # not retried forever
    assert count(engine, quarantine) == 1
    assert fetch_reports(dovecot.settings(), ingestor(engine)).messages_seen == 0
    engine.dispose()


def test_an_oversize_message_is_refused_by_its_size_without_being_downloaded(
    dovecot: Dovecot, imap_proxy: CuttingProxy, engine: Engine
) -> None:
    """A mail over [dmarc.limits] max_input_bytes (RFC822.SIZE, known before any body is read)
    is quarantined with its size and flagged like any refusal; its body is never fetched,
    while the reports around it are stored as usual."""
    big = EmailMessage()
    big["Subject"] = "Report domain: example.com Submitter: huge.example"
    big["Message-ID"] = "<huge@example>"
    big.set_content("x" * 60_000)
    dovecot.append(report_mail(1))
    dovecot.append(big.as_bytes())
    dovecot.append(report_mail(2))
    limits = Limits(max_input_bytes=20_000)
    settings = dovecot.settings(port=imap_proxy.port)
    stats = fetch_reports(settings, Ingestor(DatabaseSink(engine), limits))
    assert stats.ingest.reports_new == 2
    assert stats.ingest.quarantined == 1
    assert "over the 20000-byte cap" in stats.ingest.failed[0].reason
    assert SEEN in dovecot.flags()["<huge@example>"]  # refused once, not retried forever
    with engine.connect() as conn:
        row = conn.execute(select(quarantine.c.source, quarantine.c.size)).one()
    assert row.size > 60_000
    huge_uid = int(row.source.rpartition("uid=")[2])
    fetched = [line for line in imap_proxy.lines if "BODY.PEEK[]" in line]
    assert fetched
    for line in fetched:  # "A7 UID FETCH 3:4,6 (BODY.PEEK[])": the big one is never named
        uid_set = line.split()[3]
        for part in uid_set.split(","):
            lo, _, hi = part.partition(":")
            assert not int(lo) <= huge_uid <= int(hi or lo), line


def test_seen_only_after_commit(dovecot: Dovecot, db_url: str) -> None:
    """A database that fails (a full disk) leaves the message unseen; the rerun stores it once."""
    engine = open_database(db_url)
    dovecot.append(report_mail(7))
    refuse_writes_operationally(engine, "dmarc_reports", "true")
    with pytest.raises(StorageError, match=r"No space left|malformed JSON"):
        fetch_reports(dovecot.settings(), ingestor(engine))
    assert SEEN not in dovecot.flags()["<report-7@google.com>"]
    assert count(engine, quarantine) == 0
    allow_writes(engine, "dmarc_reports")
    stats = fetch_reports(dovecot.settings(), ingestor(engine))
    assert (stats.ingest.reports_new, stats.messages_flagged) == (1, 1)
    assert SEEN in dovecot.flags()["<report-7@google.com>"]
    assert count(engine, dmarc_reports) == 1
    engine.dispose()


def test_a_batch_of_mails_is_committed_once_then_flagged(dovecot: Dovecot, engine: Engine) -> None:
    """A commit per mail was most of a backfill's database time: the small reports of a
    batch go in one transaction, and the batch's mails are flagged after it."""
    from sqlalchemy import event

    dovecot.append_many([report_mail(n) for n in range(30)])
    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    stats = fetch_reports(dovecot.settings(), ingestor(engine), limits=BatchLimits(messages=10))
    assert (stats.ingest.reports_new, stats.messages_flagged) == (30, 30)
    assert len(commits) == 3  # one per batch of 10
    assert all(SEEN in f for f in dovecot.flags().values())
    assert count(engine, dmarc_reports) == 30


def test_drop_between_fetch_and_store_reconnects(
    dovecot: Dovecot, imap_proxy: CuttingProxy, engine: Engine
) -> None:
    """The STORE of a committed batch is cut twice: after each reconnect (same UIDVALIDITY)
    the committed messages are flagged without being read again; nothing stored twice."""
    dovecot.append_many([report_mail(n) for n in range(5)])
    imap_proxy.cut_on_store(times=2)
    waits: list[float] = []
    stats = fetch_reports(
        dovecot.settings(port=imap_proxy.port),
        ingestor(engine),
        sleep=waits.append,
        limits=BatchLimits(messages=2),
    )
    assert imap_proxy.cuts == 2
    assert stats.reconnects == 2
    assert len(waits) == 2
    assert count(engine, dmarc_reports) == 5
    assert all(SEEN in f for f in dovecot.flags().values())
    assert (stats.ingest.reports_new, stats.ingest.reports_known) == (5, 0)
    assert (stats.messages_seen, stats.messages_flagged) == (5, 5)
    assert imap_proxy.count("UID FETCH", "BODY.PEEK[]") == 3  # batches of 2, 2, 1
    rerun = fetch_reports(dovecot.settings(), ingestor(engine))
    assert (rerun.messages_seen, rerun.ingest.reports_new) == (0, 0)
    engine.dispose()


def test_drop_during_a_batch_fetch_reads_that_batch_again(
    dovecot: Dovecot, imap_proxy: CuttingProxy, engine: Engine
) -> None:
    dovecot.append_many([report_mail(n) for n in range(6)])
    imap_proxy.cut_on("UID FETCH", after=2)  # sizes, first batch, then the second batch: cut
    settings = dovecot.settings(port=imap_proxy.port, archive_folder="Done")
    stats = fetch_reports(
        settings, ingestor(engine), sleep=lambda _s: None, limits=BatchLimits(messages=3)
    )
    assert (imap_proxy.cuts, stats.reconnects) == (1, 1)
    assert (stats.ingest.reports_new, stats.ingest.reports_known) == (6, 0)
    assert (stats.messages_flagged, stats.messages_moved) == (6, 6)
    assert dovecot.flags() == {}
    assert all(SEEN in f for f in dovecot.flags("Done").values())
    engine.dispose()


def test_uidvalidity_change_during_a_run_starts_over(
    dovecot: Dovecot, imap_proxy: CuttingProxy, engine: Engine
) -> None:
    """The folder is recreated while the connection is down (UIDVALIDITY changes): what was
    committed but not flagged is read again under its new UID, found known and flagged."""
    dovecot.append_many([report_mail(n) for n in range(4)], folder="Reports")
    imap_proxy.cut_on_store()

    def recreate(_seconds: float) -> None:
        conn = dovecot.client()
        try:
            conn.delete('"Reports"')
        finally:
            conn.logout()
        dovecot.append_many([report_mail(n) for n in range(5)], folder="Reports")

    settings = dovecot.settings(port=imap_proxy.port, folder="Reports")
    stats = fetch_reports(settings, ingestor(engine), sleep=recreate)
    assert stats.reconnects == 1
    assert (stats.ingest.reports_new, stats.ingest.reports_known) == (5, 4)
    assert count(engine, dmarc_reports) == 5
    flags = dovecot.flags("Reports")
    assert len(flags) == 5
    assert all(SEEN in f for f in flags.values())
    engine.dispose()


def test_wrong_password_is_one_clear_line(dovecot: Dovecot) -> None:
    settings = dovecot.settings(password=Secret("not-the-password-123"))
    with pytest.raises(ImapError) as info:
        fetch_reports(settings, Ingestor(DryRunSink()))
    message = str(info.value)
    assert "login failed for user dmarc" in message
    assert "INBOXOPS_IMAP_PASSWORD" in message
    assert "not-the-password-123" not in message
    assert PASSWORD not in message


def test_unreachable_server_and_missing_folder(dovecot: Dovecot) -> None:
    with pytest.raises(ImapError, match="INBOXOPS_IMAP_HOST"):
        fetch_reports(dovecot.settings(port=1, timeout=2.0), Ingestor(DryRunSink()))
    with pytest.raises(ImapError, match="NoSuchFolder"):
        fetch_reports(dovecot.settings(folder="NoSuchFolder"), Ingestor(DryRunSink()))


def test_dry_run_changes_nothing(dovecot: Dovecot, sqlite_url: str) -> None:
    dovecot.append(report_mail(1))
    stats = fetch_reports(dovecot.settings(), Ingestor(DryRunSink()), dry_run=True)
    assert (stats.messages_seen, stats.ingest.reports_new, stats.messages_flagged) == (1, 1, 0)
    assert dovecot.flags() == {"<report-1@google.com>": set()}
    result = CliRunner().invoke(
        root, ["--db", sqlite_url, "dmarc", "fetch", "--dry-run", "--json"], env=dovecot.env()
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["reports_new"] == 1
    assert payload["messages_flagged"] == 0
    assert dovecot.flags() == {"<report-1@google.com>": set()}


def test_cli_fetch_json_and_missing_settings(dovecot: Dovecot, sqlite_url: str) -> None:
    dovecot.append(report_mail(1))
    dovecot.append(ordinary_mail(1))
    result = CliRunner().invoke(
        root, ["--db", sqlite_url, "dmarc", "fetch", "--json"], env=dovecot.env()
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["reports_new"], payload["messages_skipped_not_report"]) == (1, 1)
    assert {"reports_known", "records", "failed", "not_reports"} <= set(payload)
    missing = CliRunner().invoke(root, ["--db", sqlite_url, "dmarc", "fetch"])
    assert missing.exit_code == 2
    assert "INBOXOPS_IMAP_HOST" in missing.output


def test_kill_9_mid_run_then_rerun(dovecot: Dovecot, db_url: str, tmp_path: Path) -> None:
    """SIGKILL a real `inboxops dmarc fetch` mid-run; the rerun completes without duplicates.

    800 messages are two batches (500, 300): the kill lands after the first batch is flagged,
    while the second is being stored, committed but not yet flagged.
    """
    total = 800
    dovecot.append_many([report_mail(n) for n in range(total)])
    env = {**os.environ, **dovecot.env(), "INBOXOPS_DB": db_url}
    cmd = [sys.executable, "-m", "inboxops", "dmarc", "fetch"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = sum(SEEN in f for f in dovecot.flags().values())
        if seen >= 10:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    flagged_before = sum(SEEN in f for f in dovecot.flags().values())
    assert 10 <= flagged_before < total, "the kill must land mid-run"
    engine = open_database(db_url)
    stored_before = count(engine, dmarc_reports)
    assert stored_before >= flagged_before  # nothing flagged that was not stored

    rerun = subprocess.run([*cmd, "--json"], env=env, capture_output=True, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()[-500:]
    payload = json.loads(rerun.stdout)
    assert payload["reports_known"] == stored_before - flagged_before  # committed, not flagged
    assert count(engine, dmarc_reports) == total
    with engine.connect() as c:
        distinct = c.execute(select(func.count(func.distinct(dmarc_reports.c.report_id))))
        assert distinct.scalar_one() == total
    assert all(SEEN in f for f in dovecot.flags().values())
    engine.dispose()


def test_implicit_tls_and_starttls(dovecot: Dovecot, engine: Engine) -> None:
    """IMAPS and STARTTLS both carry the run; an unverifiable certificate is a clear error."""
    dovecot.append(report_mail(1))
    dovecot.append(report_mail(2))
    imaps = dovecot.settings(port=dovecot.ssl_port, security="ssl", verify_tls=False)
    with pytest.raises(ImapError, match="TLS with IMAP server") as info:
        fetch_reports(replace(imaps, verify_tls=True), Ingestor(DryRunSink()))
    assert "INBOXOPS_IMAP_SECURITY" in str(info.value)
    assert fetch_reports(imaps, ingestor(engine), all_messages=True).ingest.reports_new == 2
    starttls = dovecot.settings(security="starttls", verify_tls=False)
    again = fetch_reports(starttls, ingestor(engine), all_messages=True)
    assert (again.ingest.reports_known, again.ingest.reports_new) == (2, 0)
    engine.dispose()


def test_mailbox_names_use_modified_utf7() -> None:
    from inboxops.dmarc.fetch import utf7_mailbox

    assert utf7_mailbox("INBOX") == "INBOX"
    assert utf7_mailbox("A&B") == "A&-B"
    assert utf7_mailbox("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"  # RFC 3501


def test_non_ascii_archive_folder(dovecot: Dovecot, engine: Engine) -> None:
    dovecot.append(report_mail(1))
    stats = fetch_reports(dovecot.settings(archive_folder="Berichte/Geprüft"), ingestor(engine))
    assert stats.messages_moved == 1
    assert len(dovecot.flags("Berichte.Gepr&APw-ft")) == 1
    engine.dispose()


# -- batches -------------------------------------------------------------------------------


def test_uid_sets_are_compact_and_bounded() -> None:
    assert uid_set([7, 1, 2, 3, 9, 10, 3]) == "1:3,7,9:10"
    assert uid_set([5]) == "5"
    scattered = list(range(1, 20_000, 2))  # no runs: the longest possible set
    sets = list(uid_sets(scattered, 8000))
    assert all(len(s) <= 8000 for s in sets)
    assert sorted(int(u) for s in sets for u in s.split(",")) == scattered
    assert list(uid_sets(range(1, 5001), 8000)) == ["1:5000"]


def test_a_batch_is_bounded_by_count_and_by_bytes() -> None:
    limits = BatchLimits(messages=3, bytes=1000)
    sizes = {1: 100, 2: 100, 3: 100, 4: 100, 5: 600, 6: 500, 7: 5000, 8: 10}
    assert plan_batch([1, 2, 3, 4], sizes, limits) == [1, 2, 3]  # count
    assert plan_batch([4, 5, 6], sizes, limits) == [4, 5]  # bytes: 100 + 600, not + 500
    assert plan_batch([7, 8], sizes, limits) == [7]  # too big alone: read alone
    assert plan_batch([], sizes, limits) == []


def test_fetch_answers_are_read_whatever_the_order_of_items() -> None:
    sizes = parse_sizes(
        [b"1 (UID 4 RFC822.SIZE 120)", b"2 (RFC822.SIZE 99 UID 9)", b"3 (FLAGS ())"]
    )
    assert sizes == {4: 120, 9: 99}
    bodies = parse_bodies(
        [
            (b"1 (UID 4 BODY[] {3}", b"abc"),
            b")",
            (b"2 (BODY[] {2}", b"de"),  # this server names the UID after the literal
            b" UID 9)",
            b"3 (FLAGS (\\Seen) UID 11)",  # an unsolicited flag update: no body
        ]
    )
    assert bodies == {4: b"abc", 9: b"de"}


def test_batches_on_the_server_respect_the_byte_bound(
    dovecot: Dovecot, imap_proxy: CuttingProxy, engine: Engine
) -> None:
    mails = [report_mail(n) for n in range(10)]
    dovecot.append_many(mails)
    biggest = max(len(m.replace(b"\n", b"\r\n")) for m in mails)  # RFC822.SIZE counts CRLF
    limits = BatchLimits(messages=100, bytes=2 * biggest + 10)  # two mails fit, three do not
    stats = fetch_reports(dovecot.settings(port=imap_proxy.port), ingestor(engine), limits=limits)
    assert stats.ingest.reports_new == 10
    assert imap_proxy.count("UID FETCH", "BODY.PEEK[]") == 5
    assert imap_proxy.count("UID FETCH", "RFC822.SIZE") == 1
    assert imap_proxy.count("UID STORE") == 5
    engine.dispose()


def bulk_report_mail(n: int) -> bytes:
    """A report mail built as bytes (EmailMessage would take longer than the fetch)."""
    xml = aggregate_xml(org="bulk.example", report_id=f"b{n}", rows=[("192.0.2.1", 1, True)])
    attachment = base64.encodebytes(gzip.compress(xml)).decode()
    return (
        "From: noreply-dmarc@bulk.example\r\n"
        f"Subject: Report domain: example.com Submitter: bulk.example Report-ID: b{n}\r\n"
        f"Message-ID: <bulk-{n}@bulk.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="bulk.example!example.com!1!2!b{n}.xml.gz"'
        f"\r\n\r\n{attachment}\r\n--b--\r\n"
    ).encode()


def test_backfill_of_5000_needs_under_1_percent_of_the_round_trips(
    dovecot: Dovecot, imap_proxy: CuttingProxy, sqlite_url: str
) -> None:
    """Reading, flagging and moving one message at a time cost FETCH + STORE (+ MOVE) each:
    10,000 round trips for 5,000 messages even without an archive folder. Batches must need
    under 1% of that, counted on the wire by the proxy."""
    total = 5000
    dovecot.append_many([bulk_report_mail(n) for n in range(total)], folder="Ops")
    engine = open_database(sqlite_url)
    settings = dovecot.settings(port=imap_proxy.port, folder="Ops", archive_folder="Archive")
    stats = fetch_reports(settings, ingestor(engine), all_messages=True)
    assert (stats.ingest.reports_new, stats.messages_moved) == (total, total)
    per_message_before = 2 * total
    assert imap_proxy.count() < per_message_before // 100, imap_proxy.commands
    assert len(dovecot.flags("Archive")) == total
    assert dovecot.flags("Ops") == {}
    engine.dispose()


def test_backfill_from_another_folder_in_one_command(dovecot: Dovecot, sqlite_url: str) -> None:
    """The operator's case: 29 old reports in a shared ops@ folder, among ordinary mail
    (already read), fetched and archived by one command; the configured folder is untouched."""
    dovecot.append(report_mail(100))  # the configured INBOX: not this run's business
    dovecot.append_many([report_mail(n) for n in range(29)], folder="Shared.ops")
    for n in range(3):
        dovecot.append(ordinary_mail(n), flags=SEEN, folder="Shared.ops")
    args = ["--db", sqlite_url, "dmarc", "fetch", "--folder", "Shared/ops", "--all"]
    result = CliRunner().invoke(
        root, [*args, "--move-to", "DMARC/Old", "--json"], env=dovecot.env()
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["reports_new"], payload["messages_moved"]) == (29, 29)
    assert payload["messages_skipped_not_report"] == 3
    assert len(dovecot.flags("DMARC.Old")) == 29
    assert set(dovecot.flags("Shared.ops")) == {f"<ordinary-{n}@example.com>" for n in range(3)}
    assert SEEN not in dovecot.flags("INBOX")["<report-100@google.com>"]
