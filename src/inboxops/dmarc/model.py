"""Plain values that flow from the parsers to storage, rules and the CLI.

Parsers (``parse``, ``failure``, ``tlsrpt``) build these; ``store`` writes them; nothing here does
I/O. An aggregate report is split into :class:`ReportMeta` and a *stream* of :class:`Record`, so a
100,000-record report never has to sit in memory at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One ``<auth_results>`` entry: a DKIM signature or an SPF check as the receiver saw it."""

    method: str  # "dkim" | "spf"
    domain: str
    result: str  # lower-cased: pass, fail, softfail, neutral, none, temperror, permerror, policy
    selector: str | None = None  # DKIM only
    scope: str | None = None  # SPF only: mfrom | helo
    human_result: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One ``<record>``: ``count`` messages from ``source_ip`` that were evaluated alike."""

    source_ip: str
    count: int
    disposition: str | None
    policy_dkim: str | None  # policy_evaluated: the receiver's *aligned* verdict
    policy_spf: str | None
    header_from: str | None
    envelope_from: str | None
    envelope_to: str | None
    reasons: tuple[tuple[str, str | None], ...]  # (type, comment)
    auth_results: tuple[AuthResult, ...]
    dkim_aligned: bool
    spf_aligned: bool

    @property
    def dmarc_pass(self) -> bool:
        return self.dkim_aligned or self.spf_aligned


@dataclass(slots=True)
class ReportMeta:
    """``<report_metadata>`` plus ``<policy_published>`` of one aggregate report."""

    org_name: str
    report_id: str
    email: str | None = None
    extra_contact_info: str | None = None
    begin: datetime | None = None  # UTC, aware
    end: datetime | None = None
    version: str | None = None
    generator: str | None = None
    domain: str | None = None  # policy_published
    adkim: str | None = None
    aspf: str | None = None
    p: str | None = None
    sp: str | None = None
    np: str | None = None
    pct: int | None = None
    fo: str | None = None
    testing: str | None = None
    discovery_method: str | None = None
    errors: list[str] = field(default_factory=list)  # reporter's <error>s and our recovery notes


@dataclass(frozen=True, slots=True)
class TlsFailure:
    result_type: str
    failed_session_count: int
    sending_mta_ip: str | None = None
    receiving_ip: str | None = None
    receiving_mx_hostname: str | None = None
    receiving_mx_helo: str | None = None
    failure_reason_code: str | None = None
    additional_information: str | None = None


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    policy_type: str  # sts | tlsa | no-policy-found
    policy_domain: str
    successful_sessions: int
    failed_sessions: int
    policy_strings: tuple[str, ...] = ()
    mx_hosts: tuple[str, ...] = ()
    failures: tuple[TlsFailure, ...] = ()


@dataclass(frozen=True, slots=True)
class TlsReport:
    """An RFC 8460 SMTP TLS report."""

    org_name: str
    report_id: str
    begin: datetime | None
    end: datetime | None
    contact_info: str | None
    policies: tuple[TlsPolicy, ...]


@dataclass(frozen=True, slots=True)
class FailureReport:
    """A DMARC failure (ruf/forensic) report: RFC 6591 ARF fields plus the original headers."""

    fingerprint: str  # sha256 over normalised content: the same report twice is stored once
    feedback_type: str | None
    arrival_date: datetime | None
    source_ip: str | None
    reported_domain: str | None
    original_mail_from: str | None
    original_rcpt_to: str | None
    auth_failure: str | None
    delivery_result: str | None
    dkim_domain: str | None
    identity_alignment: str | None
    authentication_results: str | None
    user_agent: str | None
    reporter: str | None  # From: of the report mail
    subject: str | None  # Subject: of the original message
    message_id: str | None  # Message-ID of the original message
    original_headers: str | None


@dataclass(frozen=True, slots=True)
class Source:
    """Who a source IP is, as far as DNS (and an optional GeoIP database) can tell.

    ``ptr`` is the name to show: the first forward-confirmed PTR name, else the first PTR name.
    ``fcrdns`` is True when a PTR name's own A/AAAA points back at the IP, False when checked
    and not, None when unknown (no PTR, a lookup that failed, or offline without a cached
    answer). ``service``/``service_type`` come from the service map matched on ``ptr``;
    only a confirmed name should be *trusted* (see :attr:`trusted_type`). ``status`` is the DNS
    status of the PTR lookup, or ``not_cached`` when offline.
    """

    ip: str
    ptr: str | None = None
    fcrdns: bool | None = None
    base_domain: str | None = None
    service: str | None = None
    service_type: str | None = None
    country: str | None = None
    status: str = "not_cached"

    @property
    def trusted_type(self) -> str | None:
        """The service type, only when the PTR name is forward-confirmed (anyone can write any
        PTR for an IP they run; only the named domain can make it point back)."""
        return self.service_type if self.fcrdns else None

    def as_json(self) -> dict[str, str | bool | None]:
        return {
            "ptr": self.ptr,
            "fcrdns": self.fcrdns,
            "base_domain": self.base_domain,
            "service": self.service,
            "service_type": self.service_type,
            "country": self.country,
        }


class PassCounts:
    """``failed`` and ``pass_rate`` of a group of messages (per reporter, per service...)."""

    __slots__ = ()
    messages: int
    passed: int

    @property
    def failed(self) -> int:
        return self.messages - self.passed

    @property
    def pass_rate(self) -> float:
        """1.0 for no messages: nothing failed, and nothing to alert on."""
        return self.passed / self.messages if self.messages else 1.0


@dataclass(frozen=True, slots=True)
class IpStat:
    """DMARC outcome of one source IP over a window: ``summary`` computes it, ``rules`` judge it.

    ``forwarded_failed`` counts the failing messages that carry forwarding evidence (an override
    reason, or our own DKIM signature beside someone else's SPF domain); ``evidence`` names the
    kinds seen (:mod:`inboxops.dmarc.forwarding`). ``source`` is the enrichment, when looked up.
    """

    ip: str
    messages: int
    passed: int
    failed: int
    own: bool
    orgs: tuple[str, ...]  # reporting organisations
    domains: tuple[str, ...]  # header_from / policy domains the messages claimed
    policies: tuple[str, ...]  # published p= values seen for those domains (none|quarantine|reject)
    forwarded_failed: int = 0
    evidence: tuple[str, ...] = ()
    source: Source | None = None

    @property
    def pass_rate(self) -> float:
        return self.passed / self.messages if self.messages else 1.0
