"""SMTP TLS reports (RFC 8460): JSON -> :class:`TlsReport`. Pure.

Receivers that try to deliver to us over TLS (MTA-STS or DANE) report per policy how many
sessions succeeded and why others failed. Reporters differ in small ways (strings where numbers
belong, ``policy-string`` as one string, missing optional fields); those are tolerated. What is
not a TLS report, or is hostile (nesting deep enough to exhaust the stack), is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from inboxops.dmarc.model import TlsFailure, TlsPolicy, TlsReport
from inboxops.dmarc.unpack import NotAReport
from inboxops.errors import HostileInputError, ParseError

# Keys of RFC 8460's top level: a JSON object with none of them is some other document.
RFC8460_KEYS = ("organization-name", "report-id", "date-range", "policies", "contact-info")
MAX_KEY = 1024  # longest organization-name / report-id accepted; longer is refused, never cut

MAX_DEPTH = 64
_MAX_COUNT = 2**40


def looks_like_tls_report(data: bytes) -> bool:
    """Cheap sniff: a JSON object mentioning the RFC 8460 keys near its start."""
    head = data[:4096].removeprefix(b"\xef\xbb\xbf").lstrip()
    return head.startswith(b"{") and (b'"policies"' in head or b'"organization-name"' in head)


def _depth(text: str) -> int:
    """Deepest bracket nesting outside strings, found before ``json`` recurses into it."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _count(value: Any, what: str, source: str) -> int:
    if isinstance(value, bool):
        raise ParseError(f"{what} is not a number", source=source)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    elif value is None:
        return 0
    else:
        raise ParseError(f"{what} is not a whole number ({str(value)[:40]!r})", source=source)
    if number < 0 or number > _MAX_COUNT:
        raise ParseError(f"{what} is out of range ({number})", source=source)
    return number


def _date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(value: Any, limit: int = 255) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text[:limit] or None


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if isinstance(v, (str, int)) and str(v).strip())
    return ()


def _failure(item: Any, source: str) -> TlsFailure | None:
    if not isinstance(item, Mapping):
        return None
    result_type = _text(item.get("result-type"), 64)
    if not result_type:
        return None
    return TlsFailure(
        result_type=result_type,
        failed_session_count=_count(
            item.get("failed-session-count"), "failed-session-count", source
        ),
        sending_mta_ip=_text(item.get("sending-mta-ip"), 45),
        receiving_ip=_text(item.get("receiving-ip"), 45),
        receiving_mx_hostname=_text(item.get("receiving-mx-hostname")),
        receiving_mx_helo=_text(item.get("receiving-mx-helo")),
        failure_reason_code=_text(item.get("failure-reason-code"), 1024),
        additional_information=_text(item.get("additional-information"), 1024),
    )


def _policy(item: Any, source: str) -> TlsPolicy | None:
    if not isinstance(item, Mapping):
        return None
    policy = item.get("policy")
    summary = item.get("summary")
    if not isinstance(policy, Mapping):
        return None
    domain = _text(policy.get("policy-domain"))
    if not domain:
        return None
    summary = summary if isinstance(summary, Mapping) else {}
    details = item.get("failure-details")
    failures = tuple(
        f
        for f in (_failure(d, source) for d in (details if isinstance(details, list) else []))
        if f is not None
    )
    return TlsPolicy(
        policy_type=_text(policy.get("policy-type"), 32) or "unknown",
        policy_domain=domain.lower().rstrip("."),
        successful_sessions=_count(
            summary.get("total-successful-session-count"), "total-successful-session-count", source
        ),
        failed_sessions=_count(
            summary.get("total-failure-session-count"), "total-failure-session-count", source
        ),
        policy_strings=_strings(policy.get("policy-string")),
        mx_hosts=_strings(policy.get("mx-host")),
        failures=failures,
    )


def parse_tls_report(data: bytes, *, source: str = "") -> TlsReport:
    """Parse one RFC 8460 report.

    Raises NotAReport for JSON that is not a TLS report at all (no RFC 8460 key, or not JSON:
    whether that is a refusal depends on the file's name, which the caller knows), ParseError
    or HostileInputError for a TLS report that cannot be used, nothing else.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotAReport(f"{source}: not UTF-8 JSON") from None
    if _depth(text) > MAX_DEPTH:
        raise HostileInputError(f"JSON nested deeper than {MAX_DEPTH} levels", source=source)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotAReport(
            f"{source}: JSON cannot be parsed ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise HostileInputError("JSON nested too deeply", source=source) from None
    if not isinstance(doc, Mapping) or not any(k in doc for k in RFC8460_KEYS):
        raise NotAReport(f"{source}: JSON without the RFC 8460 keys is not an SMTP TLS report")
    org = _text(doc.get("organization-name"), MAX_KEY + 1)
    report_id = _text(doc.get("report-id"), MAX_KEY + 1)
    for what, value in (("organization-name", org), ("report-id", report_id)):
        if value and len(value) > MAX_KEY:
            raise ParseError(
                f"{what} is over {MAX_KEY} characters; refused rather than cut", source=source
            )
    if not org or not report_id:
        raise ParseError(
            "JSON is not an SMTP TLS report (no organization-name or report-id)", source=source
        )
    raw_policies = doc.get("policies")
    policies = tuple(
        p
        for p in (
            _policy(i, source) for i in (raw_policies if isinstance(raw_policies, list) else [])
        )
        if p is not None
    )
    if not policies:
        raise ParseError("SMTP TLS report has no usable policy", source=source)
    dates = doc.get("date-range")
    dates = dates if isinstance(dates, Mapping) else {}
    return TlsReport(
        org_name=org,
        report_id=report_id,
        begin=_date(dates.get("start-datetime")),
        end=_date(dates.get("end-datetime")),
        contact_info=_text(doc.get("contact-info"), 1024),
        policies=policies,
    )
