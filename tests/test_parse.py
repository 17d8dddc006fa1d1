"""The aggregate parser on the real corpus (read by path) and on synthetic reporter dialects."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from inboxops.config import Limits
from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.model import AuthResult, Record, ReportMeta
from inboxops.dmarc.parse import AggregateParser
from inboxops.dmarc.store import DatabaseSink
from inboxops.dmarc.unpack import Unpacker
from inboxops.storage.db import open_database
from inboxops.storage.models import dmarc_records, dmarc_reports


@dataclass
class Parsed:
    meta: ReportMeta
    records: list[Record]
    dropped: int


def _parse_stream(stream: io.BufferedIOBase | io.BytesIO, name: str) -> Parsed:
    """Unpack (sniffing gzip/zip/BOM/UTF-16) and parse the one aggregate report inside."""
    payloads = Unpacker(Limits()).payloads(stream, name)
    payload = next(payloads)
    assert payload.kind == "xml"
    assert payload.stream is not None
    parser = AggregateParser(payload.stream, source=payload.name)
    meta = parser.read_meta()
    records = list(parser.records())
    assert next(payloads, None) is None, "exactly one payload expected"
    return Parsed(meta, records, parser.dropped)


def parse_file(path: Path) -> Parsed:
    with path.open("rb") as fh:
        return _parse_stream(fh, str(path))


def parse_bytes(data: bytes) -> Parsed:
    return _parse_stream(io.BytesIO(data), "synthetic.xml")


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True)
class Expected:
    """Values read by eye from the corpus file."""

    org: str
    report_id: str
    domain: str
    p: str
    sp: str | None
    adkim: str | None
    pct: int | None
    begin: int
    end: int
    records: int
    messages: int


CORPUS_REPORTS: dict[str, Expected] = {
    "aggregate/!example.com!1538204542!1538463818.xml": Expected(
        "accurateplastics.com", "example.com:1538463741", "example.com", "none", "reject", "r",
        100, 1538413632, 1538413632, 1, 1,
    ),
    "aggregate/!large-example.com!1711897200!1711983600.xml": Expected(
        "accurateplastics.com", "example.com:1711897200", "example.com", "none", "reject", "r",
        100, 1711897200, 1711983600, 2286, 2286,
    ),
    "aggregate/addisonfoods.com!example.com!1536105600!1536191999.xml": Expected(
        "addisonfoods.com", "3ceb5548498640beaeb47327e202b0b9", "example.com", "none", "none",
        "r", 100, 1536105600, 1536191999, 1, 1,
    ),
    "aggregate/empty_reason.xml": Expected(
        "example.org", "20240125141224705995", "example.com", "quarantine", "quarantine", "r",
        100, 1706159544, 1706185733, 1, 2,
    ),
    "aggregate/example.net!example.com!1529366400!1529452799.xml": Expected(
        "example.net", "b043f0e264cf4ea995e93765242f6dfb", "example.com", "none", "none", "r",
        100, 1529366400, 1529452799, 1, 1,
    ),
    "aggregate/ikea.com!example.de!1538690400!1538776800.xml": Expected(
        "ikea.com", "aggr_report_2018_10_05_5bc7e9b4f3e8a", "example.de", "none", "none", "r",
        100, 1538690400, 1538776800, 1, 1,
    ),
    "aggregate/invalid_utf_8.xml": Expected(
        "accurateplastics.com", "example.com:1538463741", "example.com", "none", "reject", "r",
        100, 1538413632, 1538413632, 1, 1,
    ),
    "aggregate/invalid_xml.xml": Expected(
        "veeam.com", "sonexushealth.com:1530233361", "example.com", "none", "none", "r",
        100, 1530133200, 1530219600, 1, 1,
    ),
    "aggregate/old_draft_from_wiki.xml": Expected(
        "acme.com", "9391651994964116463", "example.com", "none", "none", "r",
        100, 1335571200, 1335657599, 1, 2,
    ),
    "aggregate/protection.outlook.com!example.com!1711756800!1711843200.xml": Expected(
        "Outlook.com", "cfeafefe4129445e8c81018bd9177197", "example.com", "none", "none", "r",
        100, 1711756800, 1711843200, 1, 1,
    ),
    "aggregate/rfc9990-example.net!example.com!1700000000!1700086399.xml": Expected(
        "example.net", "dmarcbis-test-report-001", "example.com", "reject", "quarantine", "s",
        None, 1700000000, 1700086399, 2, 7,
    ),
    "aggregate/rfc9990-sample.xml": Expected(
        "Sample Reporter", "3v98abbp8ya9n3va8yr8oa3ya", "example.com", "quarantine", "none",
        None, None, 302832000, 302918399, 1, 123,
    ),
    "aggregate/usssa.com!example.com!1538784000!1538870399.xml": Expected(
        "usssa.com", "8953b4d4a4ee4218b6ac0e2cb2667ee1", "example.com", "none", "none", "r",
        100, 1538784000, 1538870399, 2, 2,
    ),
    "aggregate/veeam.com!example.com!1530133200!1530219600.xml": Expected(
        "veeam.com", "sonexushealth.com:1530233361", "example.com", "none", "none", "r",
        100, 1530133200, 1530219600, 1, 1,
    ),
    "aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz": Expected(
        "FastMail Pty Ltd", "102675056", "indemed.com", "none", "none", None,
        100, 1516060800, 1516147199, 1, 1,
    ),
    "aggregate/estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940.xml.zip": (
        Expected(
            "XYZ Corporation", "2940", "example.com", "none", None, None,
            None, 1536853302, 1536939702, 1, 1,
        )
    ),
    "aggregate_invalid/report_with_upper_cased_pass.xml": Expected(
        "example.com", "aggr_report_example.com_20191202_1638", "example.com", "reject", None,
        "r", 100, 1574955300, 1575304683, 1, 1,
    ),
    "extract_report/nice-input.xml": Expected(
        "google.com", "11038226378739404135", "example.com", "none", "none", "r",
        100, 1718236800, 1718323199, 20, 3047,
    ),
    "extract_report/nice-input.xml.gz": Expected(
        "google.com", "11038226378739404135", "example.com", "none", "none", "r",
        100, 1718236800, 1718323199, 20, 3047,
    ),
    "extract_report/nice-input.xml.zip": Expected(
        "google.com", "11038226378739404135", "example.com", "none", "none", "r",
        100, 1718236800, 1718323199, 20, 3047,
    ),
    "extract_report/changed-input.xml": Expected(
        "fred.com", "11038226378739404135", "example.com", "none", "none", "r",
        100, 1718236800, 1718323199, 20, 3047,
    ),
}  # fmt: skip


def test_every_aggregate_file_of_the_corpus_is_listed(corpus: Path) -> None:
    """The table below covers every XML/gz/zip aggregate file, so a new sample is not skipped."""
    found = {
        str(p.relative_to(corpus))
        for group in ("aggregate", "aggregate_invalid", "extract_report")
        for p in (corpus / group).iterdir()
        if not p.name.endswith(".eml")
    }
    assert found == set(CORPUS_REPORTS)


@pytest.mark.parametrize("rel", sorted(CORPUS_REPORTS))
def test_corpus_report_values(corpus: Path, rel: str) -> None:
    """Metadata, policy, dates (aware UTC) and record/message totals match the file."""
    want = CORPUS_REPORTS[rel]
    got = parse_file(corpus / rel)
    meta = got.meta
    assert meta.org_name == want.org
    assert meta.report_id == want.report_id
    assert meta.domain == want.domain
    assert meta.p == want.p
    assert meta.sp == want.sp
    assert meta.adkim == want.adkim
    assert meta.pct == want.pct
    assert meta.begin == utc(want.begin)
    assert meta.end == utc(want.end)
    assert meta.begin is not None
    assert meta.end is not None
    assert meta.begin.utcoffset() == timedelta(0)
    assert meta.end.utcoffset() == timedelta(0)
    assert len(got.records) == want.records
    assert sum(r.count for r in got.records) == want.messages
    assert got.dropped == 0


def test_empty_org_name_falls_back_to_email_domain(corpus: Path) -> None:
    """Three reporters leave <org_name> empty: the <email> domain names them instead."""
    for rel in (
        "aggregate/!example.com!1538204542!1538463818.xml",
        "aggregate/!large-example.com!1711897200!1711983600.xml",
        "aggregate/invalid_utf_8.xml",
    ):
        meta = parse_file(corpus / rel).meta
        assert meta.org_name == "accurateplastics.com", rel
        assert meta.email == "administrator@accurateplastics.com"


def test_upper_case_enums_trailing_space_and_97_hour_range(corpus: Path) -> None:
    """PASS/None are lower-cased, 'example.com ' is stripped and the 97 h range kept as sent."""
    got = parse_file(corpus / "aggregate_invalid/report_with_upper_cased_pass.xml")
    assert got.meta.org_name == "example.com"
    assert got.meta.begin is not None
    assert got.meta.end is not None
    span = got.meta.end - got.meta.begin
    assert span == timedelta(seconds=1575304683 - 1574955300)
    assert span > timedelta(hours=97)
    (rec,) = got.records
    assert (rec.disposition, rec.policy_dkim, rec.policy_spf) == ("none", "pass", "pass")
    assert [(a.method, a.domain, a.result) for a in rec.auth_results] == [
        ("dkim", "example.com", "pass"),
        ("spf", "example.com", "pass"),
    ]
    assert rec.auth_results[0].human_result == "verify result: all signatures verified"
    assert rec.dkim_aligned
    assert rec.spf_aligned
    assert rec.dmarc_pass


def test_large_report_records_in_order(corpus: Path) -> None:
    """All 2,286 distinct IPs of the large report survive, in document order, count 1 each."""
    got = parse_file(corpus / "aggregate/!large-example.com!1711897200!1711983600.xml")
    assert len(got.records) == 2286
    assert got.records[0].source_ip == "12.20.121.1"
    assert got.records[1].source_ip == "12.20.121.2"
    assert len({r.source_ip for r in got.records}) == 2286
    assert all(r.count == 1 for r in got.records)
    first = got.records[0]
    assert first.auth_results == (AuthResult("spf", "", "none"),)  # empty <domain></domain>
    assert not first.dmarc_pass


def test_ipv6_source_and_alignment_in_google_report(corpus: Path) -> None:
    """extract_report: IPv6 source kept, alignment from policy_evaluated, multi-DKIM results."""
    for rel in ("extract_report/nice-input.xml", "extract_report/nice-input.xml.zip"):
        got = parse_file(corpus / rel)
        recs = got.records
        assert recs[8].source_ip == "2607:f8b0:4864:20::132"
        assert recs[8].count == 1
        assert [(a.method, a.domain, a.selector, a.result) for a in recs[8].auth_results] == [
            ("dkim", "example.com", "google", "pass"),
            ("spf", "example.com", None, "pass"),
        ]
        assert sum(r.dkim_aligned for r in recs) == 19
        assert sum(r.spf_aligned for r in recs) == 6
        assert all(r.dmarc_pass for r in recs)
        # record 0: dkim fail / spf pass as evaluated by the receiver
        assert (recs[0].dkim_aligned, recs[0].spf_aligned) == (False, True)
        # record 1: two DKIM signatures, SPF for gmail.com: the receiver's verdict wins
        assert [a.domain for a in recs[1].auth_results] == [
            "example.com",
            "amazonses.com",
            "gmail.com",
        ]
        assert recs[1].auth_results[1].selector == "ug7nbtf4gccmlpwj322ax3p6ow6yfsug"
        assert (recs[1].dkim_aligned, recs[1].spf_aligned) == (True, False)
        assert max(r.count for r in recs) == 2252


def test_auth_results_envelope_to_and_human_result(corpus: Path) -> None:
    """Selector, scope, human_result and envelope_to come through as written."""
    (rec,) = parse_file(corpus / "aggregate/empty_reason.xml").records
    assert rec.envelope_to == "example.net"
    assert rec.envelope_from == "example.edu"
    assert rec.header_from == "example.com"
    assert rec.auth_results == (
        AuthResult("dkim", "example.com", "pass", "example", None, "2048-bit key"),
        AuthResult("spf", "example.edu", "pass", None, "mfrom", None),
    )
    assert (rec.dkim_aligned, rec.spf_aligned, rec.dmarc_pass) == (True, False, True)
    (rec,) = parse_file(
        corpus / "aggregate/protection.outlook.com!example.com!1711756800!1711843200.xml"
    ).records
    assert rec.envelope_to == "hotmail.com"
    assert rec.auth_results == (AuthResult("spf", "example.com", "fail", None, "mfrom"),)
    assert not rec.dmarc_pass
    (rec,) = parse_file(
        corpus / "aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz"
    ).records
    assert rec.envelope_to == "fastmail.fm"
    assert rec.source_ip == "104.195.80.20"
    assert rec.auth_results == (AuthResult("spf", "example.com", "softfail", None, "mfrom"),)
    (rec,) = parse_file(corpus / "aggregate/ikea.com!example.de!1538690400!1538776800.xml").records
    assert rec.auth_results[1] == AuthResult("spf", "mailrelay.com", "none", None, "helo")
    # DKIM passed but the receiver said dkim=fail: its aligned verdict is what counts
    assert rec.auth_results[0] == AuthResult("dkim", "example.de", "pass")
    assert not rec.dmarc_pass


def test_reasons(corpus: Path) -> None:
    """An empty <reason><type/><comment/></reason> is no reason; a real one keeps type+comment."""
    (rec,) = parse_file(corpus / "aggregate/empty_reason.xml").records
    assert rec.reasons == ()
    got = parse_file(corpus / "aggregate/rfc9990-example.net!example.com!1700000000!1700086399.xml")
    ok, spoof = got.records
    assert ok.reasons == ()
    assert spoof.reasons == (("other", "sender not authorized"),)
    assert spoof.disposition == "reject"
    assert not spoof.dmarc_pass
    assert ok.dkim_aligned
    assert ok.spf_aligned
    meta = got.meta
    assert (meta.version, meta.np, meta.testing, meta.discovery_method) == (
        "2.0",
        "reject",
        "y",
        "treewalk",
    )
    assert (meta.adkim, meta.aspf, meta.fo) == ("s", "s", "1")


def test_dmarc_2_0_namespace_sample(corpus: Path) -> None:
    """RFC 9990 sample with xmlns="urn:ietf:params:xml:ns:dmarc-2.0" parses like the classic one."""
    got = parse_file(corpus / "aggregate/rfc9990-sample.xml")
    meta = got.meta
    assert meta.generator == "Example DMARC Aggregate Reporter v1.2"
    assert meta.version == "1.0"
    assert (meta.np, meta.testing, meta.discovery_method) == ("none", "n", "treewalk")
    assert meta.errors == []
    (rec,) = got.records
    assert (rec.source_ip, rec.count, rec.disposition) == ("192.0.2.123", 123, "pass")
    assert rec.envelope_from == "example.com"
    assert rec.auth_results == (
        AuthResult("dkim", "example.com", "pass", "abc123"),
        AuthResult("spf", "example.com", "fail"),
    )
    assert (rec.dkim_aligned, rec.spf_aligned, rec.dmarc_pass) == (True, False, True)


def test_unclosed_schema_wrapper_is_recovered_with_a_note(corpus: Path) -> None:
    """IKEA wraps <feedback> in an unclosed <xs:schema>: parsed, and the repair is noted."""
    got = parse_file(corpus / "aggregate/ikea.com!example.de!1538690400!1538776800.xml")
    assert got.meta.org_name == "ikea.com"
    assert len(got.records) == 1
    assert len(got.meta.errors) == 1
    assert got.meta.errors[0].startswith("recovered from malformed XML")


def test_invalid_utf8_is_kept_with_a_note(corpus: Path) -> None:
    """A cp1252 byte in a UTF-8 document does not lose the record; the note says why."""
    got = parse_file(corpus / "aggregate/invalid_utf_8.xml")
    (rec,) = got.records
    assert rec.source_ip == "12.20.127.122"
    assert rec.header_from is not None
    assert rec.header_from.startswith("bad_byte")
    assert len(got.meta.errors) == 1
    assert "recovered from malformed XML" in got.meta.errors[0]
    assert "encoding" in got.meta.errors[0].lower()


def test_invalid_xml_is_recovered_with_a_note(corpus: Path) -> None:
    """Unescaped '<' in <email> and <header_from>: the report and its record survive."""
    got = parse_file(corpus / "aggregate/invalid_xml.xml")
    assert got.meta.org_name == "veeam.com"
    (rec,) = got.records
    assert rec.source_ip == "199.230.200.36"
    assert (rec.policy_dkim, rec.policy_spf) == ("fail", "fail")
    assert len(got.meta.errors) == 1
    assert got.meta.errors[0].startswith("recovered from malformed XML")


def test_clean_files_carry_no_error_notes(corpus: Path) -> None:
    """Well-formed reports get no recovery note (so a note means something)."""
    for rel in (
        "aggregate/empty_reason.xml",
        "aggregate/old_draft_from_wiki.xml",
        "extract_report/nice-input.xml",
        "aggregate/!large-example.com!1711897200!1711983600.xml",
    ):
        assert parse_file(corpus / rel).meta.errors == [], rel


# -- synthetic dialects ---------------------------------------------------------------------

POLICY = (
    "<policy_published><domain>example.com</domain><adkim>{adkim}</adkim><aspf>{aspf}</aspf>"
    "<p>none</p><pct>100</pct></policy_published>"
)
METADATA = (
    "<report_metadata><org_name>Exämple GmbH</org_name><email>dmarc@example.org</email>"
    "<report_id>syn-1</report_id><date_range><begin>1700000000</begin><end>1700086399</end>"
    "</date_range></report_metadata>"
)


def record(
    ip: str = "192.0.2.1",
    count: str = "3",
    evaluated: str = "<policy_evaluated><disposition>none</disposition><dkim>pass</dkim>"
    "<spf>fail</spf></policy_evaluated>",
    header_from: str = "example.com",
    auth: str = "<spf><domain>example.com</domain><result>fail</result></spf>",
) -> str:
    return (
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count>{evaluated}</row>"
        f"<identifiers><header_from>{header_from}</header_from></identifiers>"
        f"<auth_results>{auth}</auth_results></record>"
    )


def report(
    records: str = "", *, adkim: str = "r", aspf: str = "r", policy_last: bool = False
) -> str:
    policy = POLICY.format(adkim=adkim, aspf=aspf)
    body = METADATA + (records + policy if policy_last else policy + records)
    return f'<?xml version="1.0" encoding="UTF-8"?><feedback>{body}</feedback>'


def assert_synthetic(got: Parsed, records: int) -> None:
    assert got.meta.org_name == "Exämple GmbH"
    assert got.meta.report_id == "syn-1"
    assert got.meta.domain == "example.com"
    assert got.meta.begin == utc(1700000000)
    assert len(got.records) == records


def test_utf8_bom_prefix() -> None:
    """A UTF-8 byte-order mark before <?xml is sniffed as XML and decoded correctly."""
    got = parse_bytes(b"\xef\xbb\xbf" + report(record()).encode())
    assert_synthetic(got, 1)
    assert got.meta.errors == []


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_document(codec: str) -> None:
    """UTF-16 reports (with BOM, as Windows tools write them) decode, non-ASCII included."""
    text = report(record()).replace('encoding="UTF-8"', 'encoding="UTF-16"')
    data = text.encode(codec)
    if codec != "utf-16":
        data = ("\ufeff" + text).encode(codec)
    got = parse_bytes(data)
    assert_synthetic(got, 1)
    assert got.records[0].source_ip == "192.0.2.1"
    assert got.meta.errors == []


def test_prefixed_dmarc_2_0_namespace_gmx_style() -> None:
    """<d:feedback xmlns:d="urn:ietf:params:xml:ns:dmarc-2.0"> (GMX/WEB.DE) parses fully."""
    plain = report(record() + record(ip="2001:db8::1", count="4"))
    prefixed = re.sub(r"<(/?)([a-z_]+)([ >])", r"<\1d:\2\3", plain)
    prefixed = prefixed.replace(
        "<d:feedback>", '<d:feedback xmlns:d="urn:ietf:params:xml:ns:dmarc-2.0">'
    )
    assert "<d:record>" in prefixed
    got = parse_bytes(prefixed.encode())
    assert_synthetic(got, 2)
    assert got.meta.p == "none"
    assert [r.source_ip for r in got.records] == ["192.0.2.1", "2001:db8::1"]
    assert got.records[1].count == 4
    assert got.records[0].auth_results == (AuthResult("spf", "example.com", "fail"),)


def test_records_before_policy_published() -> None:
    """Reporters that put records before <policy_published> lose neither records nor policy."""
    got = parse_bytes(
        report(
            record(ip="192.0.2.1") + record(ip="192.0.2.2") + record(ip="192.0.2.3"),
            adkim="s",
            policy_last=True,
        ).encode()
    )
    assert_synthetic(got, 3)
    assert got.meta.adkim == "s"
    assert got.meta.p == "none"
    assert [r.source_ip for r in got.records] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]


def test_unusable_records_are_dropped_and_counted() -> None:
    """Empty IP, non-numeric, negative and bad-IP counts drop that record only."""
    records = (
        record(ip="192.0.2.1", count="1")
        + record(ip="", count="5")
        + record(ip="192.0.2.3", count="many")
        + record(ip="192.0.2.4", count="-2")
        + record(ip="not-an-ip", count="2")
        + record(ip="192.0.2.6", count="")
        + record(ip="192.0.2.7", count="7")
    )
    got = parse_bytes(report(records).encode())
    assert_synthetic(got, 2)
    assert [(r.source_ip, r.count) for r in got.records] == [("192.0.2.1", 1), ("192.0.2.7", 7)]
    assert got.dropped == 5


def test_superscript_digit_count_is_dropped_not_a_crash() -> None:
    """'²' passes str.isdigit(); the record must be dropped, not crash the parser."""
    got = parse_bytes(report(record(count="²") + record(ip="192.0.2.9")).encode())
    assert len(got.records) == 1
    assert got.dropped == 1


def test_zero_record_report_is_refused_with_a_reason(db_url: str, tmp_path: Path) -> None:
    """A report without a usable <record> says nothing: refused (quarantined), not stored as
    an empty report that a summary would read as "no mail"."""
    path = tmp_path / "empty-report.xml"
    path.write_bytes(report("").encode())
    got = parse_file(path)
    assert_synthetic(got, 0)
    engine = open_database(db_url)
    try:
        stats = Ingestor(DatabaseSink(engine)).ingest_paths([path])
        assert (stats.reports_new, stats.records, stats.quarantined) == (0, 0, 1)
        [failed] = stats.failed
        assert "no usable record" in failed.reason
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(dmarc_reports)).scalar() == 0
            assert conn.execute(select(func.count()).select_from(dmarc_records)).scalar() == 0
    finally:
        engine.dispose()


AUTH_SUB = (
    "<dkim><domain>mail.example.com</domain><selector>s1</selector><result>pass</result></dkim>"
    "<spf><domain>bounce.example.com</domain><scope>mfrom</scope><result>pass</result></spf>"
)


@pytest.mark.parametrize(
    ("adkim", "aspf", "dkim_aligned", "spf_aligned"),
    [("r", "r", True, True), ("s", "s", False, False), ("s", "r", False, True)],
)
def test_missing_policy_evaluated_derives_alignment(
    adkim: str, aspf: str, dkim_aligned: bool, spf_aligned: bool
) -> None:
    """No <policy_evaluated>: alignment from auth_results; relaxed lets a subdomain align."""
    got = parse_bytes(report(record(evaluated="", auth=AUTH_SUB), adkim=adkim, aspf=aspf).encode())
    (rec,) = got.records
    assert (rec.policy_dkim, rec.policy_spf, rec.disposition) == (None, None, None)
    assert (rec.dkim_aligned, rec.spf_aligned) == (dkim_aligned, spf_aligned)
    assert rec.dmarc_pass == (dkim_aligned or spf_aligned)


def test_derived_alignment_needs_a_pass_and_a_related_domain() -> None:
    """Failing results and unrelated domains never align, even in relaxed mode."""
    auth = (
        "<dkim><domain>example.com</domain><result>fail</result></dkim>"
        "<dkim><domain>example.net</domain><result>pass</result></dkim>"
        "<spf><domain>notexample.com</domain><result>pass</result></spf>"
    )
    (rec,) = parse_bytes(report(record(evaluated="", auth=auth)).encode()).records
    assert (rec.dkim_aligned, rec.spf_aligned, rec.dmarc_pass) == (False, False, False)


def test_exact_domain_aligns_in_strict_mode() -> None:
    """Strict mode still aligns an identical domain."""
    auth = "<dkim><domain>Example.COM</domain><result>PASS</result></dkim>"
    (rec,) = parse_bytes(report(record(evaluated="", auth=auth), adkim="s").encode()).records
    assert rec.dkim_aligned
    assert not rec.spf_aligned


@pytest.mark.parametrize(
    ("begin", "expected"),
    [
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("1700000000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),  # milliseconds
        ("1700000000.0", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-14T22:13:20Z", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("soon", None),
    ],
)
def test_date_range_spellings(begin: str, expected: datetime | None) -> None:
    """Reporters send epoch seconds (the schema), milliseconds, floats or ISO dates."""
    data = (
        b"<feedback><report_metadata><org_name>o</org_name><report_id>r</report_id>"
        b"<date_range><begin>" + begin.encode() + b"</begin><end>1700086399</end></date_range>"
        b"</report_metadata><policy_published><domain>example.com</domain></policy_published>"
        b"</feedback>"
    )
    parser = AggregateParser(io.BytesIO(data))
    assert parser.read_meta().begin == expected


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),  # IPv4-mapped: the IPv4 sender
        ("2001:DB8:0:0::1", "2001:db8::1"),  # RFC 5952 canonical form
        ("[2001:db8::2]", "2001:db8::2"),
    ],
)
def test_source_ip_canonical_forms(raw: str, stored: str) -> None:
    data = (
        b"<feedback><report_metadata><org_name>o</org_name><report_id>r</report_id>"
        b"</report_metadata><policy_published><domain>example.com</domain></policy_published>"
        b"<record><row><source_ip>" + raw.encode() + b"</source_ip><count>1</count></row>"
        b"</record></feedback>"
    )
    parser = AggregateParser(io.BytesIO(data))
    parser.read_meta()
    assert [r.source_ip for r in parser.records()] == [stored]
