"""DMARC alert rules. Pure: :class:`IpStat` values in, :class:`Alert` values out.

Two questions a sender asks of a week of reports:

* *Is my own mail failing?* An own IP (``[dmarc].own_ips``) below ``min_pass_rate`` means
  receivers are seeing unauthenticated mail from us: a missing DKIM signature, an SPF record
  that lost an include, a relay path that breaks alignment. Exactly at the floor does not alert.
* *Is someone sending as us?* Any other IP with ``spoof_min_failed`` or more failing messages.
  How urgent that is depends on the published policy, which the alert names.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from inboxops.config import AlertSettings
from inboxops.dmarc.model import IpStat

OWN_IP_FAILING = "own_ip_failing"
SPOOFING = "spoofing"
_STRICTNESS = {"reject": 3, "quarantine": 2, "none": 1}


@dataclass(frozen=True)
class Alert:
    kind: str
    ip: str
    messages: int
    failed: int
    pass_rate: float
    orgs: tuple[str, ...]
    domains: tuple[str, ...]
    policy: str | None
    advice: str

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ip": self.ip,
            "messages": self.messages,
            "failed": self.failed,
            "pass_rate": round(self.pass_rate, 4),
            "orgs": list(self.orgs),
            "domains": list(self.domains),
            "policy": self.policy,
            "advice": self.advice,
        }


def strictest(policies: Iterable[str]) -> str | None:
    ranked = sorted(policies, key=lambda p: -_STRICTNESS.get(p, 0))
    return ranked[0] if ranked else None


def _own_advice(stat: IpStat) -> str:
    share = stat.failed / stat.messages if stat.messages else 0.0
    return (
        f"{share:.1%} of this IP's mail failed DMARC. Check that every stream it sends is "
        "DKIM-signed with a d= domain aligned to the From domain (a rotated or missing selector "
        "is the usual cause), that SPF for the envelope domain still includes this IP, and "
        "whether a forwarder or mailing list relays part of it."
    )


def _spoof_advice(policy: str | None) -> str:
    if policy == "reject":
        return (
            "Policy is p=reject: receivers are already rejecting these messages. No action "
            "unless this IP is yours (then sign with DKIM, add it to SPF and to INBOXOPS_OWN_IPS)."
        )
    if policy == "quarantine":
        return (
            "Policy is p=quarantine: these messages go to spam. Move to p=reject once your own "
            "streams pass; if the IP is yours, sign with DKIM, add it to SPF and to own_ips."
        )
    return (
        "Policy is p=none: these messages are being delivered. Move toward p=quarantine, then "
        "p=reject, once your own streams pass; if the IP is yours, sign with DKIM and add it to "
        "SPF and to own_ips."
    )


def _alert(kind: str, s: IpStat, policy: str | None, advice: str) -> Alert:
    return Alert(kind, s.ip, s.messages, s.failed, s.pass_rate, s.orgs, s.domains, policy, advice)


def evaluate(stats: Iterable[IpStat], thresholds: AlertSettings) -> list[Alert]:
    """Alerts for the window's per-IP stats; an empty list means healthy."""
    own: list[Alert] = []
    spoof: list[Alert] = []
    for s in stats:
        policy = strictest(s.policies)
        if s.own:
            if s.messages > 0 and s.pass_rate < thresholds.min_pass_rate:
                own.append(_alert(OWN_IP_FAILING, s, policy, _own_advice(s)))
        elif s.failed >= thresholds.spoof_min_failed:
            spoof.append(_alert(SPOOFING, s, policy, _spoof_advice(policy)))
    own.sort(key=lambda a: (a.pass_rate, a.ip))
    spoof.sort(key=lambda a: (-a.failed, a.ip))
    return own + spoof


@dataclass(frozen=True)
class Sent:
    """What an alert last told the operator."""

    last_sent_at: datetime
    last_failed: int


def due(alert: Alert, previous: Sent | None, now: datetime, repeat: timedelta) -> bool:
    """Send now? New alerts yes; known ones once ``repeat`` has passed or their failures doubled.

    Cron runs ``dmarc fetch --alert`` every hour over a 7-day window: without this, one spoofer
    would page the operator 168 times.
    """
    if previous is None:
        return True
    if now - previous.last_sent_at >= repeat:
        return True
    return alert.failed >= 2 * max(previous.last_failed, 1)


def headline(a: Alert) -> str:
    """One line: who, how bad, reported by whom."""
    head, _ = _line(a)
    more = f" and {len(a.orgs) - 5} more" if len(a.orgs) > 5 else ""
    return f"{head}. Reported by {', '.join(a.orgs[:5])}{more}."


def _line(a: Alert) -> tuple[str, str]:
    if a.kind == OWN_IP_FAILING:
        head = f"Own IP {a.ip}: {a.pass_rate:.1%} DMARC pass ({a.failed} of {a.messages} failed)"
    else:
        head = (
            f"Spoofing from {a.ip}: {a.failed} failing messages as "
            f"{', '.join(a.domains) or 'your domain'} (p={a.policy or 'unknown'})"
        )
    more = f" and {len(a.orgs) - 5} more" if len(a.orgs) > 5 else ""
    reporters = f"Reported by {', '.join(a.orgs[:5])}{more}."
    return head, f"{reporters} {a.advice}"


def cleared_line(kind: str, ip: str) -> str:
    """The all-clear for an alert that was sent and no longer holds."""
    if kind == OWN_IP_FAILING:
        return f"Resolved: own IP {ip} is back at or above the DMARC pass-rate floor"
    return f"Resolved: {ip} no longer sends failing mail as your domain above the threshold"


def _title(alerts: Sequence[Alert], cleared: Sequence[tuple[str, str]]) -> str:
    parts = []
    if alerts:
        parts.append(f"{len(alerts)} DMARC alert{'s' if len(alerts) != 1 else ''}")
    if cleared:
        parts.append(f"{len(cleared)} resolved")
    return "inboxops: " + ", ".join(parts)


def render(
    alerts: Sequence[Alert], *, window: str, cleared: Sequence[tuple[str, str]] = ()
) -> tuple[str, str]:
    """(title, HTML body) for Telegram: every interpolated value escaped."""
    title = _title(alerts, cleared)
    parts = [f"<b>{html.escape(title)}</b>", html.escape(window)]
    for a in alerts:
        head, detail = _line(a)
        parts.append(f"<b>{html.escape(head)}</b>\n{html.escape(detail)}")
    parts.extend(html.escape(cleared_line(kind, ip)) for kind, ip in cleared)
    return title, "\n\n".join(parts)


def render_text(
    alerts: Sequence[Alert], *, window: str, cleared: Sequence[tuple[str, str]] = ()
) -> str:
    """Plain-text body for channels without HTML (apprise)."""
    lines = [window]
    for a in alerts:
        head, detail = _line(a)
        lines.append(f"- {head}\n  {detail}")
    lines.extend(f"- {cleared_line(kind, ip)}" for kind, ip in cleared)
    return "\n".join(lines)
