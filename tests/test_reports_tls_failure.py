"""SMTP TLS (RFC 8460) and failure (RFC 6591) reports: real corpus files, odd and hostile input."""

from __future__ import annotations

import contextlib
import email
import email.policy
import gzip
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inboxops.dmarc.failure import is_failure_report, parse_failure_report
from inboxops.dmarc.tlsrpt import looks_like_tls_report, parse_tls_report
from inboxops.dmarc.unpack import NotAReport
from inboxops.errors import HostileInputError, ParseError


def mail(path: Path) -> EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


# -- TLS reports ----------------------------------------------------------------------------


def test_rfc8460_example(corpus: Path) -> None:
    report = parse_tls_report((corpus / "smtp_tls/rfc8460.json").read_bytes())
    assert (report.org_name, report.report_id) == (
        "Company-X",
        "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
    )
    assert report.begin == datetime(2016, 4, 1, tzinfo=UTC)
    assert report.end == datetime(2016, 4, 1, 23, 59, 59, tzinfo=UTC)
    [policy] = report.policies
    assert (policy.policy_type, policy.policy_domain) == ("sts", "company-y.example")
    assert (policy.successful_sessions, policy.failed_sessions) == (5326, 303)
    assert policy.mx_hosts == ("*.mail.company-y.example",)
    assert "mode: testing" in policy.policy_strings
    assert [(f.result_type, f.failed_session_count, f.sending_mta_ip) for f in policy.failures] == [
        ("certificate-expired", 100, "2001:db8:abcd:0012::1"),
        ("starttls-not-supported", 200, "2001:db8:abcd:0013::1"),
        ("validation-failure", 3, "198.51.100.62"),
    ]
    assert policy.failures[2].failure_reason_code == "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"


def test_mail_ru_and_generic(corpus: Path) -> None:
    ru = parse_tls_report((corpus / "smtp_tls/mail.ru.json").read_bytes())
    assert ru.org_name == "Mail.ru"
    assert ru.begin == datetime(2024, 2, 22, tzinfo=UTC)
    [policy] = ru.policies
    assert [f.result_type for f in policy.failures] == ["sts-policy-fetch-error"] * 2
    assert [f.failure_reason_code for f in policy.failures] == [
        "bad https response code: 404",
        "bad https response code: 500",
    ]
    generic = parse_tls_report((corpus / "smtp_tls/smtp_tls.json").read_bytes())
    assert generic.policies[0].failed_sessions == 3
    assert sum(f.failed_session_count for f in generic.policies[0].failures) == 3


def test_google_mailed_gzip_report(corpus: Path) -> None:
    msg = mail(corpus / "smtp_tls/google.com_smtp_tls_report.eml")
    assert not is_failure_report(msg)
    [part] = [p for p in msg.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    data = gzip.decompress(payload)
    assert looks_like_tls_report(data)
    report = parse_tls_report(data)
    assert report.org_name == "Google Inc."
    assert report.policies[0].policy_domain == "cardinalhealth.ca"


def test_tolerated_variants() -> None:
    doc = {
        "organization-name": "R",
        "report-id": "x",
        "date-range": {"start-datetime": "2024-01-01T00:00:00+02:00"},
        "policies": [
            {
                "policy": {
                    "policy-type": "tlsa",
                    "policy-domain": "Example.COM.",
                    "policy-string": "a",
                },
                "summary": {"total-successful-session-count": "7"},
            }
        ],
    }
    report = parse_tls_report(b"\xef\xbb\xbf" + json.dumps(doc).encode())
    assert report.begin == datetime(2023, 12, 31, 22, tzinfo=UTC)
    [policy] = report.policies
    assert (policy.policy_domain, policy.successful_sessions, policy.failed_sessions) == (
        "example.com",
        7,
        0,
    )
    assert policy.policy_strings == ("a",)


@pytest.mark.parametrize(
    ("data", "error", "needle"),
    [
        # not a TLS report at all: NotAReport, and the file's name decides (test_ingest_names)
        (b"{not json", NotAReport, "line 1 column 2"),
        (b"[1, 2]", NotAReport, "RFC 8460"),
        (b'{"name": "package.json", "version": "1.0"}', NotAReport, "RFC 8460"),
        (b"\xff\xfe{}", NotAReport, "UTF-8"),
        # a TLS report that cannot be used: refused
        (b'{"organization-name": "x"}', ParseError, "report-id"),
        (b'{"organization-name": "x", "report-id": "y", "policies": []}', ParseError, "no usable"),
        (b"[" * 100_000 + b"]" * 100_000, HostileInputError, "nested"),
        (
            b'{"organization-name": "x", "report-id": "' + b"y" * 1025 + b'", "policies": []}',
            ParseError,
            "over 1024 characters",
        ),
    ],
)
def test_refusals(data: bytes, error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle) as info:
        parse_tls_report(data, source="t.json")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("count", ["-1", "1e99", "true", "99999999999999999999"])
def test_bad_counts_are_refused(count: str) -> None:
    doc = (
        '{"organization-name": "x", "report-id": "y", "policies": [{"policy": '
        '{"policy-type": "sts", "policy-domain": "d"}, "summary": '
        '{"total-successful-session-count": ' + count + "}}]}"
    )
    with pytest.raises(ParseError):
        parse_tls_report(doc.encode())


# -- failure reports ------------------------------------------------------------------------

FAILURE = {
    "DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml": (
        "10.10.10.10",
        "domain.de",
        "dmarc",
        "sharepoint@domain.de",
    ),
    "[Netease DMARC Failure Report] Rent Reminder.eml": (
        "167.89.69.24",
        "cardinal.com",
        None,
        "<bounces+1137616-c1ad-xsj399=163.com@email.entrata.com>",
    ),
    "dmarc_ruf_report_linkedin.eml": ("10.10.10.10", "example.com", "dmarc", None),
    "exim_plain_text_only_no_arf_part.eml": ("203.0.113.68", "example.com", "dmarc", None),
}


@pytest.mark.parametrize("name", sorted(FAILURE))
def test_failure_reports_from_corpus(corpus: Path, name: str) -> None:
    msg = mail(corpus / "failure" / name)
    assert is_failure_report(msg)
    report = parse_failure_report(msg, source=name)
    expected = FAILURE[name]
    assert (
        report.source_ip,
        report.reported_domain,
        report.auth_failure,
        report.original_mail_from,
    ) == expected
    assert report.arrival_date is not None
    assert report.arrival_date.tzinfo is not None
    assert report.original_headers
    assert len(report.fingerprint) == 64


def test_netease_base64_feedback_part(corpus: Path) -> None:
    report = parse_failure_report(
        mail(corpus / "failure/[Netease DMARC Failure Report] Rent Reminder.eml")
    )
    assert report.user_agent == "NtesDmarcReporter/1.0"
    assert report.identity_alignment == "spf,dkim"
    assert report.subject == "Rent Reminder"
    assert report.arrival_date == datetime(2018, 9, 28, 8, 48, 42, tzinfo=UTC)


def test_exim_plain_text_headers_copy(corpus: Path) -> None:
    report = parse_failure_report(mail(corpus / "failure/exim_plain_text_only_no_arf_part.eml"))
    assert report.subject == "Payment from your account."
    assert report.message_id == "<134117F8-2145-AECE-9CCA-25FC98731341@example.com>"
    assert report.arrival_date == datetime(2025, 4, 7, 21, 16, 9, tzinfo=UTC)


def test_crlf_and_lf_copies_share_a_fingerprint(corpus: Path) -> None:
    lf = parse_failure_report(mail(corpus / "failure/dmarc_ruf_report_linkedin.eml"))
    crlf = parse_failure_report(mail(corpus / "failure/dmarc_ruf_report_linkedin.crlf.eml"))
    other = parse_failure_report(mail(corpus / "failure/exim_plain_text_only_no_arf_part.eml"))
    assert lf.fingerprint == crlf.fingerprint
    assert lf.fingerprint != other.fingerprint


def test_aggregate_mails_and_ordinary_mail_are_not_failure_reports(corpus: Path) -> None:
    for path in (corpus / "aggregate").glob("*.eml"):
        assert not is_failure_report(mail(path)), path.name
    plain = EmailMessage()
    plain["Subject"] = "DMARC failure report meeting notes"
    plain.set_content("Agenda: none")
    assert not is_failure_report(plain)


def test_arf_without_ip_or_domain_is_refused() -> None:
    msg = email.message_from_bytes(
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\n\n"
        b"--b\nContent-Type: message/feedback-report\n\nFeedback-Type: auth-failure\n\n--b--\n",
        policy=email.policy.default,
    )
    assert isinstance(msg, EmailMessage)
    assert is_failure_report(msg)
    with pytest.raises(ParseError, match="neither a source IP nor a reported domain"):
        parse_failure_report(msg, source="m.eml")


FAILURE_FILES = sorted(FAILURE)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(FAILURE_FILES),
    cut=st.integers(min_value=0, max_value=6000),
    junk=st.binary(max_size=64),
)
def test_mutated_failure_reports_raise_only_parse_error(
    corpus: Path, name: str, cut: int, junk: bytes
) -> None:
    data = (corpus / "failure" / name).read_bytes()
    mutated = data[:cut] + junk + data[cut + len(junk) :]
    msg = email.message_from_bytes(mutated, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    if is_failure_report(msg):
        with contextlib.suppress(ParseError):
            parse_failure_report(msg)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400), prefix=st.sampled_from([b"", b"{", b'{"policies": [', b"["]))
def test_random_json_raises_only_parse_error(data: bytes, prefix: bytes) -> None:
    with contextlib.suppress(ParseError, NotAReport):
        parse_tls_report(prefix + data)
