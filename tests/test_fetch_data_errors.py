"""Over IMAP, one bad value must not block every later fetch (item 18).

A TLS report whose organisation holds a NUL, or a report the database refuses, used to stop
the run with nothing stored and every mail left unseen, for good. Now text is cleaned before it
is stored, and a report the database still refuses is quarantined and its mail flagged, while
the mails around it are stored and flagged as usual. On SQLite and PostgreSQL, real Dovecot.
"""

from __future__ import annotations

import gzip
import json
from email.message import EmailMessage

from sqlalchemy import Engine, func, select

from inboxops.config import Limits
from inboxops.dmarc.fetch import fetch_reports
from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.store import DatabaseSink
from inboxops.storage.db import open_database
from inboxops.storage.models import dmarc_reports, quarantine, tls_reports
from tests.helpers import aggregate_xml
from tests.servers.dovecot import Dovecot
from tests.test_ingest_rules import TLS_REPORT, refuse_values

SEEN = "\\Seen"


def mail(subject: str, filename: str, payload: bytes, subtype: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "noreply@reporter.example"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject}@reporter.example>"
    msg.set_content("report attached")
    msg.add_attachment(payload, maintype="application", subtype=subtype, filename=filename)
    return msg.as_bytes()


def aggregate_mail(n: int, rows: list[tuple[str, int, bool]] | None = None) -> bytes:
    data = aggregate_xml(report_id=f"m{n}", rows=rows or [(f"192.0.2.{n}", 3, True)])
    return mail(
        f"agg-{n}", f"reporter.example!example.com!1!2!m{n}.xml.gz", gzip.compress(data), "gzip"
    )


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_nul_in_a_tls_report_mail_neither_blocks_nor_is_lost(dovecot: Dovecot, db_url: str) -> None:
    engine = open_database(db_url)
    evil = dict(TLS_REPORT, **{"organization-name": "evil\u0000org"})
    dovecot.append(aggregate_mail(1))
    dovecot.append(mail("tls-evil", "tls.json", json.dumps(evil).encode(), "tlsrpt+json"))
    dovecot.append(aggregate_mail(2))
    stats = fetch_reports(dovecot.settings(), Ingestor(DatabaseSink(engine), Limits()))
    assert (stats.ingest.reports_new, stats.ingest.tls_reports_new) == (2, 1)
    assert stats.messages_flagged == 3
    assert all(SEEN in flags for flags in dovecot.flags().values())
    assert count(engine, tls_reports) == 1
    engine.dispose()


def test_a_refused_report_is_quarantined_and_flagged_and_later_mail_goes_on(
    dovecot: Dovecot, db_url: str
) -> None:
    engine = open_database(db_url)
    refuse_values(engine, "dmarc_records", "source_ip", "203.0.113.66")
    dovecot.append(aggregate_mail(1))
    dovecot.append(aggregate_mail(9, rows=[("203.0.113.66", 5, False)]))
    dovecot.append(aggregate_mail(3))
    stats = fetch_reports(dovecot.settings(), Ingestor(DatabaseSink(engine), Limits()))
    assert (stats.ingest.reports_new, stats.ingest.quarantined) == (2, 1)
    assert "refused a value" in stats.ingest.failed[0].reason
    flags = dovecot.flags()
    assert all(SEEN in f for f in flags.values()), flags  # the refused one is not retried forever
    assert (count(engine, dmarc_reports), count(engine, quarantine)) == (2, 1)
    again = fetch_reports(dovecot.settings(), Ingestor(DatabaseSink(engine), Limits()))
    assert again.messages_seen == 0
    engine.dispose()


def test_fetch_dry_run_counts_stored_reports_as_known(dovecot: Dovecot, db_url: str) -> None:
    """Item 13: a dry run over mail whose reports are already stored says "known", not "new"."""
    from click.testing import CliRunner

    from inboxops.cli import root

    engine = open_database(db_url)
    for n in (1, 2, 3):
        dovecot.append(aggregate_mail(n))
    fetch_reports(dovecot.settings(), Ingestor(DatabaseSink(engine), Limits()))
    engine.dispose()
    for n in (1, 2, 3):  # the same reports arrive again (a reporter re-sends them)
        dovecot.append(aggregate_mail(n).replace(b"agg-", b"again-"))
    dovecot.append(aggregate_mail(4))
    result = CliRunner().invoke(
        root, ["--db", db_url, "dmarc", "fetch", "--dry-run", "--json"], env=dovecot.env()
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["reports_new"], payload["reports_known"]) == (1, 3)
    assert payload["messages_flagged"] == 0
