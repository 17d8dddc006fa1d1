"""Alerts out: Telegram natively, every other channel through apprise.

:func:`send_alert` tries every configured channel even when one fails, then reports the
failures together, so a broken webhook never silences Telegram (or the reverse). Telegram gets
the HTML body (it carries its own bold heading); apprise gets the title and a plain-text body.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable

from inboxops.config import Settings
from inboxops.errors import NotifyError
from inboxops.notify.apprise_channel import send_apprise
from inboxops.notify.telegram import send_telegram

log = logging.getLogger(__name__)

__all__ = ["NO_CHANNEL", "channels_configured", "html_to_text", "send_alert"]

NO_CHANNEL = (
    "no alert channel configured; set INBOXOPS_TELEGRAM_BOT_TOKEN and "
    "INBOXOPS_TELEGRAM_CHAT_ID or INBOXOPS_NOTIFY_URLS"
)
_TAG = re.compile(r"<[^<>]+>")


def channels_configured(settings: Settings) -> list[str]:
    """Names of the channels an alert would go to, in sending order."""
    channels = []
    if settings.telegram.configured:
        channels.append("telegram")
    if settings.notify.urls:
        channels.append("apprise")
    return channels


def html_to_text(body_html: str) -> str:
    """A plain-text rendering of a Telegram HTML body, for callers that have no text variant."""
    return html.unescape(_TAG.sub("", body_html))


def send_alert(
    settings: Settings, title: str, body_html: str, body_text: str | None = None
) -> list[str]:
    """Send to every configured channel; return the names of those that accepted it.

    Raises :class:`NotifyError` when no channel is configured, or, after trying all of them,
    when any failed: the message names the failed and the delivered channels, never a secret.
    """
    text = body_text if body_text is not None else html_to_text(body_html)
    senders: dict[str, Callable[[], None]] = {
        "telegram": lambda: send_telegram(settings.telegram, body_html),
        "apprise": lambda: send_apprise(settings.notify.urls, title, text),
    }
    channels = channels_configured(settings)
    if not channels:
        raise NotifyError(NO_CHANNEL, failed=[])
    sent: list[str] = []
    failed: list[str] = []
    reasons: list[str] = []
    for name in channels:
        try:
            senders[name]()
        except NotifyError as exc:
            log.warning("event=alert_channel_failed channel=%s", name)
            failed.append(name)
            reasons.append(str(exc))
        else:
            sent.append(name)
    if failed:
        raise NotifyError(
            f"alert not delivered to {', '.join(failed)} ({'; '.join(reasons)}); "
            f"delivered to: {', '.join(sent) or 'no channel'}",
            sent=sent,
            failed=failed,
        )
    log.info("event=alert_sent channels=%s", ",".join(sent))
    return sent
