"""One alert run: read the window's per-IP stats, judge them, notify if anything is wrong.

Silent on healthy windows, and quiet about what was already said: the repeat and resolve
policy is :mod:`inboxops.alerts`, shared with every capability (an alert is sent when new, after
``repeat_hours``, or when its failing messages doubled; one "resolved" line when it clears).

Forwarding findings (``forwarding`` alerts: our own mail relayed by forwarders and lists) go by
``[dmarc.alerts] forwarding``: ``"alert"`` sends them with the loud alerts; ``"digest"`` (the
default) sends them through the same :func:`~inboxops.alerts.deliver.deliver` as a separate
message of their own kind, repeated after ``digest_hours`` instead of ``repeat_hours``, so a
university forwarder shows up about once a week rather than once a day; ``"off"`` sends nothing
about them and forgets what was said (switched back on, nothing stale is "resolved"). Only the
IPs that could alert are enriched (PTR, service), through the DNS cache.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from inboxops.alerts import state
from inboxops.alerts.deliver import Delivery, deliver
from inboxops.alerts.policy import Finding
from inboxops.config import Settings
from inboxops.dmarc import rules, summary
from inboxops.window import Window

log = logging.getLogger(__name__)


@dataclass
class AlertRun:
    window: Window
    alerts: list[rules.Alert]  # loud: own IPs, spoofing (and forwarding when mode is "alert")
    sent_to: list[str] = field(default_factory=list)
    notified: bool = False
    unsent_reason: str = ""
    suppressed: list[rules.Alert] = field(default_factory=list)  # already said, not yet due
    cleared: list[tuple[str, str]] = field(default_factory=list)  # (kind, ip) sent, gone now
    digest: list[rules.Alert] = field(default_factory=list)  # forwarding, for the digest
    digest_suppressed: list[rules.Alert] = field(default_factory=list)
    digest_cleared: list[tuple[str, str]] = field(default_factory=list)
    enrich_warning: str = ""  # the resolver stopped answering

    @property
    def everything(self) -> list[rules.Alert]:
        return self.alerts + self.digest


def check(
    engine: Engine,
    settings: Settings,
    window: Window,
    *,
    dry_run: bool,
    now: datetime | None = None,
    domain: str | None = None,
    offline: bool = False,
) -> AlertRun:
    """Evaluate the rules over ``window`` (only reports about ``domain`` and its subdomains,
    when given); send to every configured channel unless ``dry_run``. ``offline``: no DNS
    lookups, PTRs and services from the cache only."""
    from inboxops.dmarc.enrich import Enricher, attach

    thresholds = settings.dmarc.alerts
    stats = summary.ip_stats(
        engine, window, settings.dmarc.own_ips, domain, ours=settings.dmarc.domains
    )
    if settings.dmarc.domains:
        wanted = set(settings.dmarc.domains)
        stats = [s for s in stats if not s.domains or wanted.intersection(s.domains)]
    candidates = [
        s.ip
        for s in stats
        if s.failed >= thresholds.spoof_min_failed
        or (s.messages > 0 and s.pass_rate < thresholds.min_pass_rate)
    ]
    enricher = Enricher(engine, settings, offline=offline)
    try:
        stats = attach(stats, enricher.sources(candidates))
    finally:
        enricher.close()
    found = rules.evaluate(stats, thresholds)
    if thresholds.forwarding == "off" and not dry_run:
        state.forget_kinds(engine, (rules.FORWARDING,))
    digest_mode = thresholds.forwarding == "digest"
    loud = [a for a in found if not (digest_mode and a.kind == rules.FORWARDING)]
    quiet = [a for a in found if digest_mode and a.kind == rules.FORWARDING]
    loud_kinds = rules.KINDS if thresholds.forwarding == "alert" else rules.LOUD_KINDS
    describe = window.describe()

    def send(
        alerts: list[rules.Alert], kinds: Collection[str], hours: float, html: Any, text: Any
    ) -> Delivery[rules.Alert]:
        """Deliver one message kind: the loud alerts, or the forwarding digest."""

        def render(
            due: Sequence[rules.Alert], cleared: Sequence[tuple[str, str]]
        ) -> tuple[str, str, str]:
            title, body_html = html(due, window=describe, cleared=cleared)
            return title, body_html, text(due, window=describe, cleared=cleared)

        return deliver(
            engine,
            settings,
            [Finding(a.kind, a.ip, a.failed, a) for a in alerts],
            kinds=kinds,
            repeat=timedelta(hours=hours),
            now=now or window.until,
            render=render,
            dry_run=dry_run,
        )

    delivery = send(loud, loud_kinds, thresholds.repeat_hours, rules.render, rules.render_text)
    run = AlertRun(
        window,
        loud,
        sent_to=delivery.sent_to,
        notified=delivery.notified,
        unsent_reason=delivery.unsent_reason,
        suppressed=delivery.suppressed,
        cleared=delivery.cleared,
        enrich_warning=enricher.warning,
    )
    if not digest_mode:
        return run
    digest = send(
        quiet,
        (rules.FORWARDING,),
        thresholds.digest_hours,
        rules.render_digest,
        rules.render_digest_text,
    )
    run.digest = quiet
    run.digest_suppressed = digest.suppressed
    run.digest_cleared = digest.cleared
    run.sent_to += [channel for channel in digest.sent_to if channel not in run.sent_to]
    run.notified = run.notified or digest.notified
    run.unsent_reason = run.unsent_reason or digest.unsent_reason
    return run
