"""The shared DMARC corpus through the full Ingestor: every report stored once whatever its
container, the census of what it holds, a second import adding nothing, and mutated corpus files
never escaping as anything but documented errors (hypothesis). Read by path, never copied.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from inboxops.config import Limits
from inboxops.dmarc.dryrun import DryRunSink
from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.parse import AggregateParser
from inboxops.dmarc.unpack import NotAReport, Unpacker
from inboxops.errors import ParseError
from inboxops.storage.models import dmarc_records, dmarc_reports, quarantine
from tests.hostile_support import counts, ingest, stored_keys, zip_members

# -- idempotency ----------------------------------------------------------------------------


def test_same_report_in_three_containers_is_stored_once(engine: Engine, corpus: Path) -> None:
    """extract_report: .xml, .xml.gz and .xml.zip hold one report; it is stored once."""
    paths = [corpus / "extract_report" / n for n in ("nice-input.xml", "nice-input.xml.gz")]
    paths.append(corpus / "extract_report/nice-input.xml.zip")
    stats = ingest(engine, paths)
    assert (stats.reports_new, stats.reports_known, stats.failed) == (1, 2, [])
    assert stored_keys(engine) == {("google.com", "11038226378739404135")}
    with engine.connect() as conn:
        messages = conn.execute(select(func.sum(dmarc_records.c.count))).scalar_one()
    assert counts(engine)["dmarc_records"] == 20
    assert messages == 3047


EXPECTED_CORPUS_KEYS = {
    ("accurateplastics.com", "example.com:1538463741"),
    ("accurateplastics.com", "example.com:1711897200"),
    ("addisonfoods.com", "3ceb5548498640beaeb47327e202b0b9"),
    ("example.org", "20240125141224705995"),
    ("example.net", "b043f0e264cf4ea995e93765242f6dfb"),
    ("ikea.com", "aggr_report_2018_10_05_5bc7e9b4f3e8a"),
    ("veeam.com", "sonexushealth.com:1530233361"),
    ("acme.com", "9391651994964116463"),
    ("Outlook.com", "cfeafefe4129445e8c81018bd9177197"),
    ("example.net", "dmarcbis-test-report-001"),
    ("Sample Reporter", "3v98abbp8ya9n3va8yr8oa3ya"),
    ("usssa.com", "8953b4d4a4ee4218b6ac0e2cb2667ee1"),
    ("XYZ Corporation", "2940"),
    ("FastMail Pty Ltd", "102675056"),
    ("google.com", "949348866075514174"),
    ("google.com", "1627703331531660819"),
    ("Mimecast", "157a5fe30ec76f4bc0d8bccfc96c118a167a1280fee7c7465af5115e73082e5e"),
    ("example.com", "aggr_report_example.com_20191202_1638"),
    ("google.com", "11038226378739404135"),
    ("fred.com", "11038226378739404135"),
}


def test_corpus_census(engine: Engine, corpus: Path) -> None:
    """The whole corpus: only empty.xml refused, SOURCE.md not a report, all 20 reports stored."""
    stats = ingest(engine, [corpus])
    assert [(Path(f.source).name, f.reason) for f in stats.failed] == [
        ("empty.xml", "empty input (0 bytes)")
    ]
    assert stats.quarantined == 1
    assert stats.not_reports == 1  # SOURCE.md
    assert stored_keys(engine) == EXPECTED_CORPUS_KEYS
    assert stats.reports_new == 20
    # nice-input .gz and .zip are the same report; invalid_utf_8 is a damaged copy of the clean
    # !example.com one (already stored: known); invalid_xml (recovered, stored first) is replaced
    # by veeam's clean copy of the same report. No two clean copies disagree.
    assert stats.reports_known == 3
    assert stats.reports_replaced == 1
    assert stats.reports_conflicting == 0
    assert stats.tls_reports_new == 4
    assert stats.failure_reports_new + stats.failure_reports_known == 5
    with engine.connect() as conn:
        q_source = conn.execute(select(quarantine.c.source)).scalar_one()
        by_key = {
            (org, rid): n
            for org, rid, n in conn.execute(
                select(
                    dmarc_reports.c.org_name,
                    dmarc_reports.c.report_id,
                    dmarc_reports.c.record_count,
                )
            )
        }
    assert Path(q_source).name == "empty.xml"
    assert by_key[("accurateplastics.com", "example.com:1711897200")] == 2286
    assert by_key[("fred.com", "11038226378739404135")] == 20
    assert sum(by_key.values()) == counts(engine)["dmarc_records"]
    assert all(n >= 1 for n in by_key.values())


def test_corpus_twice_is_idempotent(engine: Engine, corpus: Path) -> None:
    """A second import of the whole corpus stores nothing new and changes no row count."""
    first = ingest(engine, [corpus])
    before = counts(engine)
    second = ingest(engine, [corpus])
    assert second.reports_new == 0
    assert second.reports_known == first.reports_new + first.reports_known + first.reports_replaced
    assert second.tls_reports_new == 0
    assert second.failure_reports_new == 0
    assert counts(engine) == before


# -- property: mutated corpus files never escape as anything but documented errors ------------

SEED_SUFFIXES = (".xml", ".gz", ".zip", ".eml")


@cache
def _seeds(corpus: Path) -> tuple[tuple[str, bytes], ...]:
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.name.endswith(SEED_SUFFIXES))
    return tuple((p.name, p.read_bytes()) for p in files if p.stat().st_size)


@st.composite
def mutations(draw: st.DrawFn, base: bytes) -> bytes:
    """Byte flips, truncations, insertions and chunk duplications of ``base``."""
    out = bytearray(base)
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["flip", "truncate", "insert", "duplicate"]),
                st.integers(min_value=0, max_value=2**31),
                st.integers(min_value=0, max_value=2**31),
                st.binary(min_size=1, max_size=32),
            ),
            min_size=1,
            max_size=4,
        )
    )
    for op, a, b, blob in ops:
        n = len(out)
        if op == "flip" and n:
            out[a % n] ^= 1 + b % 255
        elif op == "truncate":
            del out[a % (n + 1) :]
        elif op == "insert":
            at = a % (n + 1)
            out[at:at] = blob
        elif op == "duplicate" and n:
            start = a % n
            chunk = bytes(out[start : start + 1 + b % 8192])
            at = b % (n + 1)
            out[at:at] = chunk
    return bytes(out)


@st.composite
def mutated_corpus_file(draw: st.DrawFn, corpus: Path) -> tuple[str, bytes]:
    """A corpus file mutated as is or, for gzip and zip, inside its container (so that the
    damage reaches the parser rather than only the checksums)."""
    name, base = draw(st.sampled_from(_seeds(corpus)))
    if base.startswith(b"\x1f\x8b") and draw(st.booleans()):
        return name, gzip.compress(draw(mutations(gzip.decompress(base))))
    if base.startswith(b"PK\x03\x04") and draw(st.booleans()):
        with zipfile.ZipFile(io.BytesIO(base)) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist()}
        first = next(iter(members))
        members[first] = draw(mutations(members[first]))
        return name, zip_members(members)
    return name, draw(mutations(base))


PROPERTY = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(data=st.data())
def test_mutated_inputs_never_escape_the_ingestor(corpus: Path, data: st.DataObject) -> None:
    """Whatever the bytes, ingest_bytes returns stats: a broken input is counted, never raised."""
    name, blob = data.draw(mutated_corpus_file(corpus))
    stats = Ingestor(DryRunSink(), Limits()).ingest_bytes(blob, name)
    outcomes = (
        stats.reports_new
        + stats.tls_reports_new
        + stats.failure_reports_new
        + stats.not_reports
        + len(stats.failed)
    )
    assert outcomes >= 1
    assert all("\n" not in f.reason for f in stats.failed)


@PROPERTY
@given(data=st.data())
def test_mutated_inputs_raise_only_documented_errors(corpus: Path, data: st.DataObject) -> None:
    """Unpacker and AggregateParser raise ParseError (incl. HostileInputError) or NotAReport."""
    name, blob = data.draw(mutated_corpus_file(corpus))
    try:
        for payload in Unpacker(Limits()).payloads(io.BytesIO(blob), name):
            if payload.kind != "xml" or payload.stream is None:
                continue
            parser = AggregateParser(payload.stream, source=payload.name)
            parser.read_meta()
            for rec in parser.records():
                assert rec.count >= 0
    except (ParseError, NotAReport):
        pass


def test_report_mail_with_unreadable_attachment_is_quarantined_not_ignored() -> None:
    """Yahoo once sent gzips holding the word "unused": the mail is a report mail, so it is
    refused (and, over IMAP, flagged) rather than left for every later run to trip over."""
    from email.message import EmailMessage

    report_mail = EmailMessage()
    report_mail["Subject"] = "Report Domain: example.com Submitter: yahoo.com"
    report_mail.set_content("aggregate report attached")
    report_mail.add_attachment(
        gzip.compress(b"unused"),
        maintype="application",
        subtype="gzip",
        filename="yahoo.com!example.com!1683072000!1683158399.xml.gz",
    )
    stats = Ingestor(DryRunSink()).ingest_bytes(report_mail.as_bytes(), "imap:1")
    assert (stats.not_reports, stats.quarantined) == (0, 1)
    assert "named like a report" in stats.failed[0].reason

    ordinary = EmailMessage()
    ordinary["Subject"] = "invoice"
    ordinary.set_content("see attached")
    ordinary.add_attachment(
        b"%PDF-1.4", maintype="application", subtype="octet-stream", filename="invoice.pdf"
    )
    stats = Ingestor(DryRunSink()).ingest_bytes(ordinary.as_bytes(), "imap:2")
    assert (stats.not_reports, stats.quarantined, stats.failed) == (1, 0, [])
