"""Forwarded or spoofed? Pure: a failing record's facts (or an IP's totals) in, a verdict out.

A university forwarder or a mailing list breaks SPF (it sends from its own IP) and often DKIM
(a footer, a subject tag), so our own mail reaches receivers failing DMARC from an IP that is
not ours. That is not spoofing, and alerting on it as loudly as on spoofing teaches operators
to ignore alerts. Three kinds of evidence tell the two apart:

1. **The receiver says so**: an override reason ``forwarded``, ``mailing_list`` or
   ``trusted_forwarder``, or ``local_policy`` whose comment mentions ARC (receivers such as
   Microsoft and Google accept forwarded mail on a trusted ARC chain and report it that way).
2. **The IP is a known forwarder or list**: its forward-confirmed PTR name matches a service of
   type ``forwarder`` or ``mailing_list`` (a PTR that is not confirmed proves nothing: whoever
   runs an IP writes its PTR).
3. **Our signature, broken in transit**: the record carries a DKIM result for one of our own
   domains (``[dmarc] domains``, or the report's policy domain when none are configured) while
   SPF names someone else's domain: the message was signed by us and relayed by someone else.

Evidence (1) and (3) are per record, so they explain *messages*; (2) explains the whole IP.
An external IP is ``forwarded`` when its identity says so (2), or when forwarding evidence
explains so many of its failing messages that fewer than ``spoof_min_failed`` remain
unexplained; it is ``spoofing`` otherwise. So forwarding can never hide a spoofer: an IP with
``spoof_min_failed`` unexplained failures is a spoofer however much forwarded mail it also
relays.

Evidence (3) can be forged: a spoofer who adds a broken ``d=`` signature of ours and uses an
envelope domain of their own looks forwarded. Forwarded findings are therefore still reported
(in the digest by default), each naming its PTR, service and evidence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Final, Literal

from inboxops.dmarc.model import IpStat

Classification = Literal["own", "forwarded", "spoofing"]

OWN: Final = "own"
FORWARDED: Final = "forwarded"
SPOOFING: Final = "spoofing"

FORWARDING_REASONS: Final = frozenset({"forwarded", "mailing_list", "trusted_forwarder"})
FORWARDING_TYPES: Final = frozenset({"forwarder", "mailing_list"})
_ARC = re.compile(r"(?<![a-z0-9])arc(?![a-z0-9])", re.IGNORECASE)

# evidence names, as shown in alerts and --json
DKIM_OURS_SPF_OTHER: Final = "dkim_ours_spf_other"
LOCAL_POLICY_ARC: Final = "local_policy_arc"


def is_ours(domain: str | None, ours: Iterable[str]) -> bool:
    """``domain`` is one of ``ours`` or a subdomain of one (``mail.example.com``)."""
    d = (domain or "").strip().strip(".").lower()
    return bool(d) and any(d == o or d.endswith("." + o) for o in ours if o)


def reason_list(raw: object) -> list[tuple[str, str | None]]:
    """Stored override reasons (JSON ``[[type, comment], ...]``, as text or decoded)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return []
    out: list[tuple[str, str | None]] = []
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, list | tuple) and item:
                kind = str(item[0] or "")
                comment = item[1] if len(item) > 1 and isinstance(item[1], str) else None
                out.append((kind, comment))
    return out


def record_evidence(
    reasons: Iterable[tuple[str, str | None]],
    dkim_domains: Iterable[str],
    spf_domains: Iterable[str],
    ours: Sequence[str],
) -> str | None:
    """Why one failing record looks forwarded (an evidence name), or None when nothing does.

    ``ours`` are our domains (lower case); ``dkim_domains``/``spf_domains`` the domains of the
    record's DKIM and SPF auth results, whatever their result.
    """
    for kind, comment in reasons:
        k = kind.strip().lower()
        if k in FORWARDING_REASONS:
            return k
        if k == "local_policy" and comment and _ARC.search(comment):
            return LOCAL_POLICY_ARC
    spf = [d for d in spf_domains if d and d.strip()]
    if (
        any(is_ours(d, ours) for d in dkim_domains)
        and spf
        and not all(is_ours(d, ours) for d in spf)
    ):
        return DKIM_OURS_SPF_OTHER
    return None


def classify(stat: IpStat, spoof_min_failed: int) -> Classification | None:
    """The verdict on one IP over a window (see the module docstring); None when it failed
    nothing and is not ours."""
    if stat.own:
        return OWN
    if stat.failed <= 0:
        return None
    if stat.source is not None and stat.source.trusted_type in FORWARDING_TYPES:
        return FORWARDED
    unexplained = stat.failed - min(stat.forwarded_failed, stat.failed)
    if stat.forwarded_failed <= 0 or unexplained >= spoof_min_failed:
        return SPOOFING
    return FORWARDED


def evidence_of(stat: IpStat) -> tuple[str, ...]:
    """Every kind of forwarding evidence for ``stat``, the service's type included."""
    out = list(stat.evidence)
    if stat.source is not None and stat.source.trusted_type in FORWARDING_TYPES:
        out.insert(0, f"service_{stat.source.trusted_type}")
    return tuple(out)
