"""The aggregate parser on synthetic reporter dialects: BOMs and UTF-16, prefixed DMARC 2.0
namespaces, records before the policy, unusable values dropped and counted, derived alignment,
date-range spellings and source IP forms."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.model import AuthResult
from inboxops.dmarc.parse import AggregateParser
from inboxops.dmarc.store import DatabaseSink
from inboxops.storage.db import open_database
from inboxops.storage.models import dmarc_records, dmarc_reports
from tests.dmarc_parse_support import Parsed, parse_bytes, parse_file, utc

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
