"""DMARC alert rules. Pure: :class:`IpStat` values in, :class:`Alert` values out.

Two questions a sender asks of a week of reports:

* *Is my own mail failing?* An own IP (``[dmarc].own_ips``) below ``min_pass_rate`` means
  receivers are seeing unauthenticated mail from us: a missing DKIM signature, an SPF record
  that lost an include, a relay path that breaks alignment. Exactly at the floor does not alert.
* *Is someone sending as us?* Any other IP with ``spoof_min_failed`` or more failing messages.
  How urgent that is depends on the published policy, which the alert names. Such an IP is
  classified (:mod:`inboxops.dmarc.forwarding`): ``spoofing`` stays a loud ``spoofing`` alert;
  ``forwarded`` (a forwarder or mailing list relaying our own mail) becomes a ``forwarding``
  finding, which ``[dmarc.alerts] forwarding`` sends as a quieter digest, as an alert, or not.

Every alert names the IP's PTR (and whether it is forward-confirmed) and its sending service,
when enrichment looked them up.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from inboxops.config import AlertSettings
from inboxops.dmarc.forwarding import FORWARDED, classify, evidence_of
from inboxops.dmarc.model import IpStat, Source

OWN_IP_FAILING = "own_ip_failing"
SPOOFING = "spoofing"
FORWARDING = "forwarding"
LOUD_KINDS = (OWN_IP_FAILING, SPOOFING)
KINDS = (OWN_IP_FAILING, SPOOFING, FORWARDING)  # this capability's alert kinds (alert_state)
_STRICTNESS = {"reject": 3, "quarantine": 2, "none": 1}


@dataclass(frozen=True)
class Alert:
    """One finding about one source IP; ``advice`` says what the operator should check.

    ``policy`` is the strictest ``p=`` published for the domains the IP's mail claimed, because
    that decides what receivers already do with it.
    """

    kind: str  # OWN_IP_FAILING | SPOOFING | FORWARDING
    ip: str
    messages: int
    failed: int
    pass_rate: float
    orgs: tuple[str, ...]
    domains: tuple[str, ...]
    policy: str | None
    advice: str
    classification: str | None = None  # own | spoofing | forwarded
    forwarded_failed: int = 0  # failing messages with forwarding evidence
    evidence: tuple[str, ...] = ()
    source: Source | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "classification": self.classification,
            "ip": self.ip,
            **(self.source or Source(self.ip)).as_json(),
            "messages": self.messages,
            "failed": self.failed,
            "forwarded_failed": self.forwarded_failed,
            "evidence": list(self.evidence),
            "pass_rate": round(self.pass_rate, 4),
            "orgs": list(self.orgs),
            "domains": list(self.domains),
            "policy": self.policy,
            "advice": self.advice,
        }


def strictest(policies: Iterable[str]) -> str | None:
    """The strictest published ``p=`` (reject > quarantine > none); None if none is known."""
    known = [p.strip().lower() for p in policies if p.strip().lower() in _STRICTNESS]
    return max(known, key=_STRICTNESS.__getitem__) if known else None


def _own_advice(stat: IpStat) -> str:
    share = stat.failed / stat.messages if stat.messages else 0.0
    return (
        f"{share:.1%} of this IP's mail failed DMARC. Check that every stream it sends is "
        "DKIM-signed with a d= domain aligned to the From domain (a rotated or missing selector "
        "is the usual cause), that SPF for the envelope domain still includes this IP, that its "
        "PTR record resolves back to a name of yours, and whether part of this traffic reaches "
        "receivers through a forwarder or mailing list."
    )


_IF_YOURS = (
    "If the IP is yours after all, DKIM-sign its mail, add it to SPF and to INBOXOPS_OWN_IPS."
)


def _spoof_advice(policy: str | None) -> str:
    if policy == "reject":
        return (
            "Policy is p=reject: receivers are already rejecting these messages, no action "
            f"needed. {_IF_YOURS}"
        )
    if policy == "quarantine":
        return (
            "Policy is p=quarantine: these messages go to spam. Move to p=reject once your own "
            f"streams pass. {_IF_YOURS}"
        )
    if policy == "none":
        return (
            "Policy is p=none: these messages are being delivered. Move toward p=quarantine, "
            f"then p=reject, once your own streams pass. {_IF_YOURS}"
        )
    return (
        "The reports name no policy: check your _dmarc TXT record; without p=quarantine or "
        f"p=reject these messages are likely being delivered. {_IF_YOURS}"
    )


_EVIDENCE = {
    "forwarded": "reported as forwarded",
    "mailing_list": "reported as a mailing list",
    "trusted_forwarder": "reported as a trusted forwarder",
    "local_policy_arc": "accepted on ARC (local_policy)",
    "dkim_ours_spf_other": "our DKIM signature with another domain's SPF",
    "service_forwarder": "a known forwarder",
    "service_mailing_list": "a known mailing list",
}


def evidence_text(evidence: Sequence[str]) -> str:
    return ", ".join(_EVIDENCE.get(e, e) for e in evidence) or "none"


def _forward_advice(s: IpStat, evidence: Sequence[str]) -> str:
    return (
        f"This looks like your own mail relayed by a forwarder or mailing list "
        f"({evidence_text(evidence)}), not spoofing: nothing to block. DKIM survives plain "
        "forwarding where SPF cannot, so keep every stream DKIM-signed; a list that rewrites "
        "messages breaks DKIM too (ask its operator for ARC sealing or From rewriting). If you "
        "do not recognise this relay, treat it as spoofing: [dmarc.alerts] forwarding = "
        '"alert" sends these like spoofing alerts.'
    )


def _alert(
    kind: str,
    s: IpStat,
    policy: str | None,
    advice: str,
    classification: str | None,
    evidence: tuple[str, ...] = (),
) -> Alert:
    return Alert(
        kind,
        s.ip,
        s.messages,
        s.failed,
        s.pass_rate,
        s.orgs,
        s.domains,
        policy,
        advice,
        classification,
        min(s.forwarded_failed, s.failed),
        evidence,
        s.source,
    )


def evaluate(stats: Iterable[IpStat], thresholds: AlertSettings) -> list[Alert]:
    """Alerts for the window's per-IP stats; an empty list means healthy.

    Both thresholds are inclusive on the healthy side for own IPs and on the alerting side for
    spoofers: an own IP exactly at ``min_pass_rate`` is fine, a foreign IP with exactly
    ``spoof_min_failed`` failures alerts. An own IP is never called a spoofer, however badly it
    fails: that is the own-IP rule's job, with advice that fits.

    A foreign IP past the threshold is a ``spoofing`` alert unless it is classified
    ``forwarded``; then it is a ``forwarding`` alert, left out when ``thresholds.forwarding`` is
    ``"off"`` (whether it is sent loudly or in the digest is :mod:`inboxops.dmarc.alerting`'s).
    """
    own: list[Alert] = []
    spoof: list[Alert] = []
    forwarded: list[Alert] = []
    for s in stats:
        policy = strictest(s.policies)
        if s.own:
            if s.messages > 0 and s.pass_rate < thresholds.min_pass_rate:
                own.append(_alert(OWN_IP_FAILING, s, policy, _own_advice(s), "own"))
        elif s.failed >= thresholds.spoof_min_failed:
            verdict = classify(s, thresholds.spoof_min_failed)
            evidence = evidence_of(s)
            if verdict == FORWARDED:
                if thresholds.forwarding != "off":
                    advice = _forward_advice(s, evidence)
                    forwarded.append(_alert(FORWARDING, s, policy, advice, FORWARDED, evidence))
            else:
                advice = _spoof_advice(policy)
                spoof.append(_alert(SPOOFING, s, policy, advice, SPOOFING, evidence))
    # our own failures first (we can fix them), then the loudest sources
    own.sort(key=lambda a: (-a.failed, a.ip))
    spoof.sort(key=lambda a: (-a.failed, a.ip))
    forwarded.sort(key=lambda a: (-a.failed, a.ip))
    return own + spoof + forwarded


def _reporters(a: Alert) -> str:
    more = f" and {len(a.orgs) - 5} more" if len(a.orgs) > 5 else ""
    names = ", ".join(a.orgs[:5]) or "no named organisation"
    text = f"Reported by {names}{more}"
    return text if text.endswith(".") else text + "."  # "Test Inc." ends the sentence itself


def headline(a: Alert) -> str:
    """One line: who, how bad, reported by whom."""
    return f"{_head(a)}. {_reporters(a)}"


def identity(source: Source | None) -> str:
    """The PTR (and whether it is forward-confirmed), the service and the country of an IP."""
    if source is None:
        return "PTR not looked up"
    if source.ptr:
        ptr = f"PTR {source.ptr}"
        if source.fcrdns is False:
            ptr += " (not forward-confirmed)"
        elif source.fcrdns is None:
            ptr += " (forward confirmation failed)"
    elif source.status == "not_cached":
        ptr = "PTR not known (offline)"
    elif source.status in ("nxdomain", "no_answer", "ok"):
        ptr = "no PTR"
    else:
        ptr = f"PTR lookup failed ({source.status})"
    service = (
        f"service {source.service} ({source.service_type})" if source.service else "unknown service"
    )
    country = f", {source.country}" if source.country else ""
    return f"{ptr}, {service}{country}"


def _head(a: Alert) -> str:
    who = f"{a.ip} [{identity(a.source)}]"
    as_ = ", ".join(a.domains) or "your domain"
    if a.kind == OWN_IP_FAILING:
        return f"Own IP {who}: {a.pass_rate:.1%} DMARC pass ({a.failed} of {a.messages} failed)"
    if a.kind == FORWARDING:
        return (
            f"Forwarded mail from {who}: {a.failed} failing messages as {as_}, "
            f"{a.forwarded_failed} with forwarding evidence"
        )
    head = f"Spoofing from {who}: {a.failed} failing messages as {as_} (p={a.policy or 'unknown'})"
    if a.forwarded_failed:
        head += f"; {a.forwarded_failed} of them look forwarded, too few to explain the rest"
    return head


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def cleared_line(kind: str, ip: str) -> str:
    """The all-clear for an alert that was sent and no longer holds."""
    if kind == OWN_IP_FAILING:
        return f"Resolved: own IP {ip} is back at or above the DMARC pass-rate floor"
    if kind == FORWARDING:
        return f"Resolved: {ip} no longer relays failing mail as your domain above the threshold"
    return (
        f"Resolved: {ip} no longer sends failing mail as your domain above the threshold "
        "(or it is now classified as forwarding)"
    )


def _title(alerts: Sequence[Alert], cleared: Sequence[tuple[str, str]]) -> str:
    parts = []
    if alerts:
        parts.append(f"{len(alerts)} DMARC alert{'s' if len(alerts) != 1 else ''}")
    if cleared:
        parts.append(f"{len(cleared)} resolved")
    return "inboxops: " + (", ".join(parts) or "no DMARC alerts")


def render(
    alerts: Sequence[Alert], *, window: str, cleared: Sequence[tuple[str, str]] = ()
) -> tuple[str, str]:
    """(title, HTML body) for Telegram; every interpolated value is escaped.

    IPs and domains are safe today, but ``orgs`` comes from whoever sent the report, so it is
    treated as hostile like everything else.
    """
    title = _title(alerts, cleared)
    parts = [f"<b>{_esc(title)}</b>\n{_esc(window)}"]
    for a in alerts:
        parts.append(f"<b>{_esc(_head(a))}</b>\n{_esc(_reporters(a))} {_esc(a.advice)}")
    parts.extend(_esc(cleared_line(kind, ip)) for kind, ip in cleared)
    return title, "\n\n".join(parts)


def render_text(
    alerts: Sequence[Alert], *, window: str, cleared: Sequence[tuple[str, str]] = ()
) -> str:
    """Plain-text body for channels without HTML (apprise); the title travels separately."""
    lines = [window]
    for a in alerts:
        lines.append(f"- {_head(a)}\n  {_reporters(a)} {a.advice}")
    lines.extend(f"- {cleared_line(kind, ip)}" for kind, ip in cleared)
    return "\n".join(lines)


def render_digest(
    alerts: Sequence[Alert], *, window: str, cleared: Sequence[tuple[str, str]] = ()
) -> tuple[str, str]:
    """(title, HTML body) of the forwarding digest: one short line per relay, no advice
    repeated per line."""
    title = (
        f"inboxops: DMARC forwarding digest, {len(alerts)} relay{'s' if len(alerts) != 1 else ''}"
        if alerts
        else f"inboxops: DMARC forwarding digest, {len(cleared)} resolved"
    )
    blocks = [f"<b>{_esc(title)}</b>\n{_esc(window)}"]
    if alerts:
        blocks.append(_esc(_DIGEST_NOTE))
    lines = [f"- {_esc(_digest_line(a))}" for a in alerts]
    lines += [f"- {_esc(cleared_line(kind, ip))}" for kind, ip in cleared]
    if lines:
        blocks.append("\n".join(lines))
    return title, "\n\n".join(blocks)


def render_digest_text(
    alerts: Sequence[Alert], *, window: str, cleared: Sequence[tuple[str, str]] = ()
) -> str:
    lines = [window]
    if alerts:
        lines.append(_DIGEST_NOTE)
    lines.extend(f"- {_digest_line(a)}" for a in alerts)
    lines.extend(f"- {cleared_line(kind, ip)}" for kind, ip in cleared)
    return "\n".join(lines)


_DIGEST_NOTE = (
    "Your own mail relayed by forwarders and mailing lists, failing DMARC on the way: not "
    "spoofing. Keep every stream DKIM-signed; `inboxops dmarc summary` shows the details."
)


def _digest_line(a: Alert) -> str:
    return (
        f"{a.ip} [{identity(a.source)}]: {a.failed} failing as "
        f"{', '.join(a.domains) or 'your domain'}; {evidence_text(a.evidence)}. {_reporters(a)}"
    )
