"""One alert run: read the window's per-IP stats, judge them, notify if anything is wrong.

Silent on healthy windows, and quiet about what was already said: an alert is sent when it is
new, when ``repeat_hours`` have passed since it was last sent, or when its failures doubled
(:func:`inboxops.dmarc.rules.due`); an alert that was sent and no longer holds gets one
"resolved" line. The state is written only after a channel accepted the message, so a failed
delivery is retried on the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from inboxops.config import Settings
from inboxops.dmarc import alert_state, rules, summary
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
    cleared: list[tuple[str, str]] = field(default_factory=list)  # (kind, ip) sent before, gone now


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
    from inboxops.notify import channels_configured, send_alert

    stats = summary.ip_stats(engine, window, settings.dmarc.own_ips, domain)
    if settings.dmarc.domains:
        wanted = set(settings.dmarc.domains)
        stats = [s for s in stats if not s.domains or wanted.intersection(s.domains)]
    alerts = rules.evaluate(stats, settings.dmarc.alerts)
    run = AlertRun(window, alerts)
    if dry_run:
        log.info("event=alert_check alerts=%d dry_run=true", len(alerts))
        return run
    if not channels_configured(settings):
        if not alerts:
            return run
        log.warning("event=alerts_not_sent reason=no_channel alerts=%d", len(alerts))
        run.unsent_reason = (
            "no alert channel configured (INBOXOPS_TELEGRAM_* or INBOXOPS_NOTIFY_URLS); "
            "alerts printed only"
        )
        return run
    now = now or window.until
    previous = alert_state.load(engine)
    repeat = timedelta(hours=settings.dmarc.alerts.repeat_hours)
    due = [a for a in alerts if rules.due(a, previous.get((a.kind, a.ip)), now, repeat)]
    run.suppressed = [a for a in alerts if a not in due]
    current = {(a.kind, a.ip) for a in alerts}
    run.cleared = sorted(key for key in previous if key not in current)
    if not due and not run.cleared:
        log.info("event=alert_check alerts=%d suppressed=%d", len(alerts), len(run.suppressed))
        return run
    describe = window.describe()
    title, body_html = rules.render(due, window=describe, cleared=run.cleared)
    body_text = rules.render_text(due, window=describe, cleared=run.cleared)
    run.sent_to = send_alert(settings, title, body_html, body_text)
    alert_state.record(engine, due, now)
    alert_state.forget(engine, run.cleared)
    run.notified = True
    return run
