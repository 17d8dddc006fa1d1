"""Realistic DMARC aggregate reports from a seeded random generator.

Used by ``inboxops demo`` (a story an operator recognises: one own IP with a broken DKIM
selector, one spoofer, forwarders), by the tests, and by ``bench/dmarc`` (thousands of small
reports, one report with 100,000 records). Deterministic per seed. The large report is written
in chunks, never held in memory.
"""

from __future__ import annotations

import gzip
import io
import random
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

DMARC2_NS = "urn:ietf:params:xml:ns:dmarc-2.0"
SPOOFER = "203.0.113.66"
BROKEN_OWN_IP = "198.51.100.25"
FORWARDERS = ("192.0.2.200", "198.51.100.77", "203.0.113.140")


@dataclass(frozen=True)
class Reporter:
    org: str
    email: str
    namespaced: bool = False


REPORTERS = (
    Reporter("google.com", "noreply-dmarc-support@google.com"),
    Reporter("Yahoo", "dmarchelp@yahooinc.com"),
    Reporter("Outlook.com", "dmarcreport@microsoft.com"),
    Reporter("comcast.net", "dmarc_rua@comcast.net"),
    Reporter("cox.net", "dmarc@cox.net"),
    Reporter("Mimecast", "no-reply@mimecastreport.com"),
    Reporter("GMX", "dmarc_reports@gmx.net", namespaced=True),
    Reporter("WEB.DE", "dmarc_reports@web.de", namespaced=True),
    Reporter("Enterprise (Cisco ESA)", "dmarc-noreply@esa.example-corp.com"),
    Reporter("bell.ca", "dmarc@bell.ca"),
    Reporter("icloud.com", "dmarc_agg@icloud.com"),
)


@dataclass(frozen=True)
class Row:
    ip: str
    count: int
    dkim_pass: bool
    spf_pass: bool
    selector: str
    dkim_domain: str
    spf_domain: str


def _record_xml(row: Row, domain: str) -> str:
    dkim = "pass" if row.dkim_pass else "fail"
    spf = "pass" if row.spf_pass else "fail"
    disposition = "none" if row.dkim_pass or row.spf_pass else "quarantine"
    return (
        "<record><row>"
        f"<source_ip>{row.ip}</source_ip><count>{row.count}</count>"
        f"<policy_evaluated><disposition>{disposition}</disposition><dkim>{dkim}</dkim>"
        f"<spf>{spf}</spf></policy_evaluated></row>"
        f"<identifiers><envelope_from>{escape(row.spf_domain)}</envelope_from>"
        f"<header_from>{escape(domain)}</header_from></identifiers>"
        f"<auth_results><dkim><domain>{escape(row.dkim_domain)}</domain>"
        f"<selector>{escape(row.selector)}</selector><result>{dkim}</result></dkim>"
        f"<spf><domain>{escape(row.spf_domain)}</domain><scope>mfrom</scope>"
        f"<result>{spf}</result></spf></auth_results></record>\n"
    )


def _head(reporter: Reporter, report_id: str, domain: str, begin: int, end: int) -> str:
    xmlns = f' xmlns="{DMARC2_NS}"' if reporter.namespaced else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<feedback{xmlns}>\n'
        "<version>1.0</version>\n<report_metadata>"
        f"<org_name>{escape(reporter.org)}</org_name><email>{escape(reporter.email)}</email>"
        f"<report_id>{escape(report_id)}</report_id>"
        f"<date_range><begin>{begin}</begin><end>{end}</end></date_range>"
        "</report_metadata>\n<policy_published>"
        f"<domain>{escape(domain)}</domain><adkim>r</adkim><aspf>r</aspf>"
        "<p>quarantine</p><sp>quarantine</sp><pct>100</pct><fo>1</fo>"
        "</policy_published>\n"
    )


def _rows(rng: random.Random, own_ips: Sequence[str], domain: str) -> list[Row]:
    rows: list[Row] = []
    for _ in range(rng.randint(1, 12)):
        pick = rng.random()
        if pick < 0.70:
            ip = rng.choice(own_ips)
            if ip == BROKEN_OWN_IP and rng.random() < 0.2:
                # the stream signed with a retired selector: DKIM fails, SPF is for the ESP
                rows.append(
                    Row(
                        ip,
                        rng.randint(5, 60),
                        False,
                        False,
                        "old2019",
                        domain,
                        "bounce.esp.example",
                    )
                )
            else:
                rows.append(
                    Row(ip, rng.randint(5, 60), True, True, "s2026", domain, f"bounce.{domain}")
                )
        elif pick < 0.80:
            rows.append(
                Row(SPOOFER, rng.randint(1, 3), False, False, "x", "spoof.example", "spoof.example")
            )
        elif pick < 0.82:
            rows.append(
                Row(
                    rng.choice(FORWARDERS),
                    1,
                    False,
                    rng.random() < 0.3,
                    "s2026",
                    "list.example.org",
                    "list.example.org",
                )
            )
        else:
            # a forwarder that keeps the DKIM signature intact: passes
            rows.append(
                Row(
                    f"209.85.{rng.randint(128, 255)}.{rng.randint(1, 254)}",
                    rng.randint(1, 4),
                    True,
                    False,
                    "s2026",
                    domain,
                    "gmail.com",
                )
            )
    return rows


def _write(path: Path, xml: bytes, kind: str) -> Path:
    if kind == "gz":
        target = path.with_name(path.name + ".gz")
        target.write_bytes(gzip.compress(xml, mtime=0))
    elif kind == "zip":
        target = path.with_suffix(".zip")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(zipfile.ZipInfo(path.name, (2026, 1, 1, 0, 0, 0)), xml)
        target.write_bytes(buffer.getvalue())
    else:
        target = path
        target.write_bytes(xml)
    return target


def generate_reports(
    out_dir: Path,
    *,
    count: int,
    seed: int = 7,
    domain: str = "example.com",
    own_ips: Sequence[str] = ("192.0.2.10", "192.0.2.11", BROKEN_OWN_IP),
    start: datetime | None = None,
    compress: str = "mixed",
) -> list[Path]:
    """Write ``count`` small reports (1-12 records) spread over the 7 days before ``start``."""
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    end_of_window = (start or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    paths: list[Path] = []
    spoofed = 0
    for i in range(count):
        reporter = REPORTERS[i % len(REPORTERS)]
        day = end_of_window - timedelta(days=1 + rng.randint(0, 5))
        begin = int(day.replace(hour=0).timestamp())
        end = begin + 86399
        report_id = f"{seed}-{i:06d}-{rng.getrandbits(32):08x}"
        rows = _rows(rng, own_ips, domain)
        if i == count - 1 and spoofed < 45:
            rows.append(
                Row(SPOOFER, 45 - spoofed, False, False, "x", "spoof.example", "spoof.example")
            )
        spoofed += sum(r.count for r in rows if r.ip == SPOOFER)
        body = "".join(_record_xml(r, domain) for r in rows)
        xml = (_head(reporter, report_id, domain, begin, end) + body + "</feedback>\n").encode()
        org = reporter.org.replace(" ", "_").replace("/", "_")
        name = f"{org}!{domain}!{begin}!{end}!{report_id}.xml"
        kind = "none" if compress == "none" else ("xml", "gz", "zip")[i % 3]
        paths.append(_write(out_dir / name, xml, kind))
    return paths


def _large_rows(rng: random.Random, records: int, domain: str) -> Iterator[Row]:
    for i in range(records):
        ip = (
            f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            if i % 7
            else (f"2001:db8::{i >> 16:x}:{i & 0xFFFF:x}")
        )
        ok = rng.random() < 0.9
        yield Row(
            ip,
            rng.randint(1, 50),
            ok,
            rng.random() < 0.8,
            "s2026",
            domain if ok else "other.example",
            f"bounce.{domain}",
        )


def generate_large_report(
    path: Path, *, records: int = 100_000, seed: int = 7, domain: str = "example.com"
) -> Path:
    """One report with ``records`` records and distinct IPs, written in chunks."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    begin = 1763856000
    with path.open("w", encoding="utf-8") as fh:
        fh.write(_head(REPORTERS[0], f"large-{seed}-{records}", domain, begin, begin + 86399))
        chunk: list[str] = []
        for row in _large_rows(rng, records, domain):
            chunk.append(_record_xml(row, domain))
            if len(chunk) >= 5000:
                fh.write("".join(chunk))
                chunk = []
        fh.write("".join(chunk))
        fh.write("</feedback>\n")
    return path
