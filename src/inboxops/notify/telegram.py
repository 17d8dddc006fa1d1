"""Telegram Bot API ``sendMessage``, spoken natively with httpx.

One request per message chunk, a timeout on each, bounded retries: ``429`` waits the
``retry_after`` Telegram asks for (capped), ``5xx`` and connection failures back off, and
``400/401/403`` are configuration problems that no retry fixes, so they fail at once with a
message saying what to change. The bot token is part of the URL path; no exception, log line or
message produced here ever contains it.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from inboxops.config import TelegramSettings
from inboxops.errors import NotifyError

log = logging.getLogger(__name__)
# httpx logs every request URL at INFO, and Telegram's URL carries the bot token: keep those
# loggers quiet whatever level the application (or a test's caplog) sets on the root.
for _noisy in ("httpx", "httpcore"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

MAX_TEXT = 4096
MAX_ATTEMPTS = 4
MAX_RETRY_AFTER = 60.0


def escape_html(text: str) -> str:
    """Escape ``<``, ``>`` and ``&`` for ``parse_mode=HTML`` (SMTP replies are full of them)."""
    return html.escape(text, quote=False)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Chunks of at most ``limit`` characters, cut at line boundaries where possible."""
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) > limit:
            chunks.append(current)
            current = ""
        current += line
    if current or not chunks:
        chunks.append(current)
    return [c.rstrip("\n") or c for c in chunks]


def _describe(payload: Any, status: int) -> tuple[str, dict[str, Any]]:
    if isinstance(payload, dict):
        params = payload.get("parameters")
        return str(payload.get("description") or f"HTTP {status}"), (
            params if isinstance(params, dict) else {}
        )
    return f"HTTP {status}", {}


def _config_error(status: int, description: str, params: dict[str, Any]) -> NotifyError:
    if status == 401:
        return NotifyError(
            "Telegram refused the bot token (401 Unauthorized); check INBOXOPS_TELEGRAM_BOT_TOKEN"
        )
    if "migrate_to_chat_id" in params:
        return NotifyError(
            f"Telegram: the group became a supergroup; set INBOXOPS_TELEGRAM_CHAT_ID="
            f"{params['migrate_to_chat_id']}"
        )
    if status == 403:
        return NotifyError(
            f"Telegram refused to post ({description}); add the bot to the chat or unblock it"
        )
    if "chat not found" in description.lower():
        return NotifyError(
            f"Telegram: {description}; check INBOXOPS_TELEGRAM_CHAT_ID and that the bot "
            "has been added to that chat"
        )
    return NotifyError(f"Telegram rejected the message ({status}: {description})")


def send_telegram(
    settings: TelegramSettings,
    text: str,
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send ``text`` (HTML, already escaped by the caller) to the configured chat."""
    if not settings.configured:
        raise NotifyError(
            "Telegram is not configured; set INBOXOPS_TELEGRAM_BOT_TOKEN and "
            "INBOXOPS_TELEGRAM_CHAT_ID"
        )
    url = f"{settings.api_url.rstrip('/')}/bot{settings.bot_token.reveal()}/sendMessage"
    with httpx.Client(timeout=settings.timeout, transport=transport) as client:
        for chunk in split_text(text):
            _send_one(client, url, settings.chat_id, chunk, sleep)


def _send_one(
    client: httpx.Client, url: str, chat_id: str, text: str, sleep: Callable[[float], None]
) -> None:
    body = {
        "chat_id": chat_id,
        "text": text,
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }
    last = "no attempt made"
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            response = client.post(url, json=body)
        except httpx.TimeoutException:
            last = "timed out"
        except httpx.TransportError as exc:
            last = f"connection failed ({type(exc).__name__})"
        else:
            try:
                payload = response.json()
            except ValueError:
                payload = None
            status = response.status_code
            if status == 200 and isinstance(payload, dict) and payload.get("ok"):
                log.info("event=telegram_sent chat=%s attempt=%d", chat_id, attempt)
                return
            description, params = _describe(payload, status)
            if status == 429:
                wait = min(float(params.get("retry_after", 1) or 1), MAX_RETRY_AFTER)
                log.warning("event=telegram_throttled retry_after=%s", wait)
                last = f"rate limited ({description})"
                if attempt < MAX_ATTEMPTS:
                    sleep(wait)
                continue
            if status < 500:
                raise _config_error(status, description, params)
            last = f"server error {status}"
        log.warning("event=telegram_retry attempt=%d reason=%s", attempt, last)
        if attempt < MAX_ATTEMPTS:
            sleep(min(2.0 ** (attempt - 1), 10.0))
    raise NotifyError(f"Telegram did not accept the message after {MAX_ATTEMPTS} tries ({last})")
