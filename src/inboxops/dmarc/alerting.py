"""One alert run: read the window's per-IP stats, judge them, notify if anything is wrong.

Silent on healthy windows, and quiet about what was already said: the repeat and resolve
policy is :mod:`inboxops.alerts`, shared with every capability (an alert is sent when new, after
``repeat_hours``, or when its failing messages doubled; one "resolved" line when it clears).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from inboxops.alerts.deliver import deliver
from inboxops.alerts.policy import Finding
from inboxops.config import Settings
from inboxops.dmarc import rules, summary
from inboxops.window import Window

log = logging.getLogger(__name__)


@dataclass
class AlertRun:
    window: Window
    alerts: list[rules.Alert]
    sent_to: list[str] = field(default_factory=list)
    notified: bool = False
    unsent_reason: str = ""
    suppressed: list[rules.Alert] = field(default_factory=list)  # already said, not yet due
    cleared: list[tuple[str, str]] = field(default_factory=list)  # (kind, ip) sent, gone now


def check(
    engine: Engine,
    settings: Settings,
    window: Window,
    *,
    dry_run: bool,
    now: datetime | None = None,
    domain: str | None = None,
) -> AlertRun:
    """Evaluate the rules over ``window`` (only reports about ``domain`` and its subdomains,
    when given); send to every configured channel unless ``dry_run``."""
    stats = summary.ip_stats(engine, window, settings.dmarc.own_ips, domain)
    if settings.dmarc.domains:
        wanted = set(settings.dmarc.domains)
        stats = [s for s in stats if not s.domains or wanted.intersection(s.domains)]
    found = rules.evaluate(stats, settings.dmarc.alerts)
    describe = window.describe()

    def render(
        due: Sequence[rules.Alert], cleared: Sequence[tuple[str, str]]
    ) -> tuple[str, str, str]:
        title, body_html = rules.render(due, window=describe, cleared=cleared)
        return title, body_html, rules.render_text(due, window=describe, cleared=cleared)

    delivery = deliver(
        engine,
        settings,
        [Finding(a.kind, a.ip, a.failed, a) for a in found],
        kinds=rules.KINDS,
        repeat=timedelta(hours=settings.dmarc.alerts.repeat_hours),
        now=now or window.until,
        render=render,
        dry_run=dry_run,
    )
    return AlertRun(
        window,
        found,
        sent_to=delivery.sent_to,
        notified=delivery.notified,
        unsent_reason=delivery.unsent_reason,
        suppressed=delivery.suppressed,
        cleared=delivery.cleared,
    )
