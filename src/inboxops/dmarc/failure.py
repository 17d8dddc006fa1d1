"""DMARC failure (ruf, "forensic") reports -> :class:`FailureReport`. Pure.

Three shapes reach a ruf mailbox:

* RFC 6591 ARF: ``multipart/report; report-type=feedback-report`` with a
  ``message/feedback-report`` part (the fields) and the original message or its headers;
* the same parts inside ``multipart/mixed`` with the feedback part base64-encoded (Netease);
* plain text only, with "Sender IP Address:"-style lines and a copy of the headers (Exim).

The fingerprint hashes the report's content with line endings and folding normalised, so a
report delivered twice, or once with CRLF and once with LF, is stored once.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import socket
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import parsedate_to_datetime

from inboxops.dmarc.model import FailureReport
from inboxops.errors import ParseError

_SUBJECT = re.compile(r"\bdmarc\b.*\b(forensic|failure)\b", re.IGNORECASE)
_PLAIN_FIELDS = {
    "sender domain": "reported_domain",
    "sender ip address": "source_ip",
    "received date": "arrival_date",
}
_COPY_MARK = re.compile(r"^-+ *this is a copy of the headers.*$", re.IGNORECASE | re.MULTILINE)
_REPORT_ATTACHMENTS = ("application/zip", "application/gzip", "application/x-gzip", "text/xml")


def _feedback_part(msg: Message) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            return part
    return None


def is_failure_report(msg: EmailMessage) -> bool:
    """Whether ``msg`` is a DMARC failure report (ARF or the plain-text variant)."""
    try:
        if msg.get_content_type() == "multipart/report" and (
            str(msg.get_param("report-type", "")).lower() == "feedback-report"
        ):
            return True
        if _feedback_part(msg) is not None:
            return True
        if not _SUBJECT.search(str(msg.get("Subject", ""))):
            return False
        for part in msg.walk():
            if part.get_content_type() in _REPORT_ATTACHMENTS:
                return False  # an aggregate report whose subject says "failure"
        return "sender ip address:" in _plain_body(msg).lower()
    except Exception:  # hostile MIME: the caller treats it as an ordinary mail
        return False


def _plain_body(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                charset = part.get_content_charset() or "utf-8"
                try:
                    return payload.decode(charset, errors="replace")
                except LookupError:
                    return payload.decode("utf-8", errors="replace")
    return ""


def _normalise(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def _arf_text(part: Message) -> str:
    """The ARF fields as text, however the sender encoded the part."""
    cte = str(part.get("Content-Transfer-Encoding", "")).lower().strip()
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        inner = payload[0]
        if isinstance(inner, Message):
            items = list(inner.items())
            if items and cte != "base64":
                return "\n".join(f"{k}: {v}" for k, v in items)
            body = inner.get_payload()
            text = body if isinstance(body, str) else ""
        else:
            text = ""
    else:
        raw = part.get_payload(decode=True)
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else ""
    if cte == "base64":
        try:
            return binascii.a2b_base64(text.encode("ascii", errors="ignore")).decode(
                "utf-8", errors="replace"
            )
        except (binascii.Error, ValueError):
            raise ParseError("feedback-report part is not valid base64") from None
    return text


def _original(msg: Message) -> tuple[str | None, str | None, str | None]:
    """(headers text, subject, message-id) of the message the report is about."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                inner = payload[0]
                headers = "\n".join(f"{k}: {v}" for k, v in inner.items())
                return (
                    _normalise(headers),
                    _str(inner.get("Subject")),
                    _str(inner.get("Message-ID")),
                )
        if ctype == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else ""
            parsed = HeaderParser().parsestr(text)
            return _normalise(text), _str(parsed.get("Subject")), _str(parsed.get("Message-ID"))
    return None, None, None


def _str(value: object) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:2000] or None


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    text = value.strip().strip("[]")
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, text))
    except (OSError, ValueError):
        return None


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _fields_from_arf(text: str) -> dict[str, str]:
    parsed = HeaderParser().parsestr(_normalise(text) + "\n\n")
    fields: dict[str, str] = {}
    for key, value in parsed.items():
        name = key.strip().lower()
        clean = " ".join(str(value).split())
        if name in fields:  # Original-Rcpt-To and Authentication-Results may repeat
            fields[name] = f"{fields[name]}, {clean}"
        else:
            fields[name] = clean
    return fields


def _fields_from_plain(body: str) -> tuple[dict[str, str], str | None]:
    fields: dict[str, str] = {}
    for line in body.splitlines():
        key, sep, value = line.partition(":")
        mapped = _PLAIN_FIELDS.get(key.strip().lower())
        if sep and mapped and mapped not in fields:
            fields[mapped] = value.strip()
    mark = _COPY_MARK.search(body)
    headers = body[mark.end() :].strip() if mark else None
    return fields, headers


def parse_failure_report(msg: EmailMessage, *, source: str = "") -> FailureReport:
    """Extract the ARF fields; raises ParseError when the mail carries no usable report."""
    try:
        return _parse(msg, source)
    except ParseError as exc:
        raise ParseError(exc.reason, source=source) from None
    except (LookupError, ValueError, TypeError, AttributeError, UnicodeError) as exc:
        raise ParseError(
            f"failure report is malformed ({type(exc).__name__})", source=source
        ) from None


def _parse(msg: EmailMessage, source: str) -> FailureReport:
    part = _feedback_part(msg)
    headers, subject, message_id = _original(msg)
    if part is not None:
        f = _fields_from_arf(_arf_text(part))
        source_ip = _ip(f.get("source-ip"))
        reported_domain = f.get("reported-domain")
        arrival_text = f.get("arrival-date") or f.get("received-date")
        values = {
            "feedback_type": f.get("feedback-type"),
            "original_mail_from": f.get("original-mail-from") or None,
            "original_rcpt_to": f.get("original-rcpt-to") or None,
            "auth_failure": f.get("auth-failure"),
            "delivery_result": f.get("delivery-result"),
            "dkim_domain": f.get("dkim-domain"),
            "identity_alignment": f.get("identity-alignment"),
            "authentication_results": f.get("authentication-results"),
            "user_agent": f.get("user-agent"),
        }
    else:
        plain, copied = _fields_from_plain(_plain_body(msg))
        source_ip = _ip(plain.get("source_ip"))
        reported_domain = plain.get("reported_domain")
        arrival_text = plain.get("arrival_date")
        if copied and headers is None:
            parsed = HeaderParser().parsestr(copied)
            headers = _normalise(copied)
            subject, message_id = _str(parsed.get("Subject")), _str(parsed.get("Message-Id"))
        values = {
            "feedback_type": "auth-failure",
            "original_mail_from": None,
            "original_rcpt_to": None,
            "auth_failure": "dmarc",
            "delivery_result": None,
            "dkim_domain": None,
            "identity_alignment": None,
            "authentication_results": None,
            "user_agent": None,
        }
    reported_domain = (reported_domain or "").strip().lower().rstrip(".") or None
    if source_ip is None and reported_domain is None:
        raise ParseError("failure report names neither a source IP nor a reported domain")
    values = {
        k: (v[:255] if isinstance(v, str) and k != "authentication_results" else v)
        for k, v in values.items()
    }
    fingerprint = hashlib.sha256(
        "\x1f".join(
            [
                source_ip or "",
                reported_domain or "",
                arrival_text or "",
                str(values["original_mail_from"] or ""),
                str(values["original_rcpt_to"] or ""),
                message_id or "",
                subject or "",
                headers or "",
            ]
        ).encode("utf-8", errors="replace")
    ).hexdigest()
    return FailureReport(
        fingerprint=fingerprint,
        arrival_date=_date(arrival_text),
        source_ip=source_ip,
        reported_domain=reported_domain[:255] if reported_domain else None,
        reporter=_str(msg.get("From")),
        subject=subject,
        message_id=message_id,
        original_headers=headers,
        **values,
    )
