"""One alert run for any capability: plan against what was sent, render, send, remember.

The capability supplies its findings and a renderer; everything else (the repeat policy, the
"resolved" lines, silence when nothing is due, state written only after a channel accepted,
the warning when no channel is configured) is the same for DMARC, reputation and health.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from sqlalchemy import Engine

from inboxops.alerts import state
from inboxops.alerts.policy import Finding, plan
from inboxops.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
# (due alerts, cleared (kind, key)) -> (title, HTML body for Telegram, plain text for apprise)
Renderer = Callable[[Sequence[T], Sequence[tuple[str, str]]], tuple[str, str, str]]

NO_CHANNEL_NOTE = (
    "no alert channel configured (INBOXOPS_TELEGRAM_* or INBOXOPS_NOTIFY_URLS); alerts printed only"
)


@dataclass
class Delivery(Generic[T]):
    alerts: list[T]
    due: list[T] = field(default_factory=list)
    suppressed: list[T] = field(default_factory=list)  # already sent, not due again yet
    cleared: list[tuple[str, str]] = field(default_factory=list)  # (kind, key) resolved
    sent_to: list[str] = field(default_factory=list)
    unsent_reason: str = ""
    notified: bool = False


def deliver(
    engine: Engine,
    settings: Settings,
    findings: Sequence[Finding[T]],
    *,
    kinds: Collection[str],
    repeat: timedelta,
    now: datetime,
    render: Renderer[T],
    dry_run: bool,
) -> Delivery[T]:
    """Send what is due of ``findings`` (alert kinds ``kinds``) to every configured channel."""
    from inboxops.notify import channels_configured, send_alert

    out: Delivery[T] = Delivery([f.alert for f in findings])
    if dry_run:
        log.info(
            "event=alert_check kinds=%s alerts=%d dry_run=true", ",".join(kinds), len(findings)
        )
        return out
    if not channels_configured(settings):
        if findings:
            log.warning("event=alerts_not_sent reason=no_channel alerts=%d", len(findings))
            out.unsent_reason = NO_CHANNEL_NOTE
        return out
    decided = plan(findings, state.load(engine, kinds), now, repeat)
    out.due = [f.alert for f in decided.due]
    out.suppressed = [f.alert for f in decided.suppressed]
    out.cleared = decided.cleared
    if not decided.due and not decided.cleared:
        log.info("event=alert_check alerts=%d suppressed=%d", len(findings), len(out.suppressed))
        return out
    title, body_html, body_text = render(out.due, out.cleared)
    out.sent_to = send_alert(settings, title, body_html, body_text)
    state.record(engine, decided.due, now)  # type: ignore[arg-type]
    state.forget(engine, decided.cleared)
    out.notified = True
    return out
