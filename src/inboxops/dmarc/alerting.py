"""One alert run: read the window's per-IP stats, judge them, notify if anything is wrong.

Silent on healthy windows: nothing is sent when :func:`inboxops.dmarc.rules.evaluate` finds
nothing, so the command can run from cron every hour without noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine

from inboxops.config import Settings
from inboxops.dmarc import rules, summary
from inboxops.dmarc.summary import Window

log = logging.getLogger(__name__)


@dataclass
class AlertRun:
    window: Window
    alerts: list[rules.Alert]
    sent_to: list[str] = field(default_factory=list)
    notified: bool = False
    unsent_reason: str = ""


def check(engine: Engine, settings: Settings, window: Window, *, dry_run: bool) -> AlertRun:
    """Evaluate the rules over ``window``; send to every configured channel unless ``dry_run``."""
    from inboxops.notify import channels_configured, send_alert

    stats = summary.ip_stats(engine, window, settings.own_ips)
    if settings.domains:
        wanted = set(settings.domains)
        stats = [s for s in stats if not s.domains or wanted.intersection(s.domains)]
    alerts = rules.evaluate(stats, settings.alerts)
    run = AlertRun(window, alerts)
    if not alerts or dry_run:
        log.info("event=alert_check alerts=%d dry_run=%s", len(alerts), dry_run)
        return run
    if not channels_configured(settings):
        log.warning("event=alerts_not_sent reason=no_channel alerts=%d", len(alerts))
        run.unsent_reason = (
            "no alert channel configured (INBOXOPS_TELEGRAM_* or INBOXOPS_NOTIFY_URLS); "
            "alerts printed only"
        )
        return run
    title, body_html = rules.render(alerts, window=window.describe())
    body_text = rules.render_text(alerts, window=window.describe())
    run.sent_to = send_alert(settings, title, body_html, body_text)
    run.notified = True
    return run
