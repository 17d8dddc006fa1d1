"""Alerts out: Telegram natively, every other channel through apprise.

:func:`send_alert` tries every configured channel even when one fails, then reports the failures
together, so a broken webhook never silences Telegram (or the reverse).
"""

from __future__ import annotations

import logging

from inboxops.config import Settings
from inboxops.errors import ConfigError, NotifyError
from inboxops.notify.apprise_channel import send_apprise
from inboxops.notify.telegram import send_telegram

log = logging.getLogger(__name__)

__all__ = ["channels_configured", "send_alert"]


def channels_configured(settings: Settings) -> list[str]:
    channels = []
    if settings.telegram.configured:
        channels.append("telegram")
    if settings.notify_urls:
        channels.append("apprise")
    return channels


def send_alert(
    settings: Settings, title: str, body_html: str, body_text: str | None = None
) -> list[str]:
    """Send to all configured channels; returns those that succeeded."""
    channels = channels_configured(settings)
    if not channels:
        raise ConfigError(
            "no alert channel configured; set INBOXOPS_TELEGRAM_BOT_TOKEN and "
            "INBOXOPS_TELEGRAM_CHAT_ID, or INBOXOPS_NOTIFY_URLS"
        )
    sent: list[str] = []
    errors: list[str] = []
    if "telegram" in channels:
        try:
            send_telegram(settings.telegram, body_html)
            sent.append("telegram")
        except NotifyError as exc:
            errors.append(str(exc))
    if "apprise" in channels:
        try:
            send_apprise(settings.notify_urls, title, body_text or body_html)
            sent.append("apprise")
        except NotifyError as exc:
            errors.append(str(exc))
    if errors:
        raise NotifyError("; ".join(errors))
    return sent
