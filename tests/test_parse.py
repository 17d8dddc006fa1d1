"""The aggregate parser on the real corpus, read by path; synthetic reporter dialects are in
test_parse_dialects.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from inboxops.dmarc.model import AuthResult
from tests.dmarc_parse_support import parse_file, utc


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
