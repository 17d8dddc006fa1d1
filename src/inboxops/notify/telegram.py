"""Telegram Bot API ``sendMessage``, spoken natively with httpx.

Telegram is the channel most operators read first, so it needs no extra package and gets its
own careful client: a timeout on every request, bounded retries (``429`` waits the
``retry_after`` Telegram asks for, capped; ``5xx``, timeouts and connection failures back off),
and no retry at all for ``400/401/403``, which are configuration problems that waiting does not
fix: those fail at once with a message saying which setting to change.

The bot token is part of the URL path, and httpx puts URLs into its exceptions and its INFO
log line. So no httpx exception text is ever passed on, nothing is chained to one, and while we
send, a filter on the ``httpx`` logger masks ``/bot<token>`` in whatever it logs (the CLI also
keeps that logger at WARNING, see ``inboxops.logging``; the filter covers applications that
embed us and turn it up).
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from inboxops.config import TelegramSettings
from inboxops.errors import NotifyError

log = logging.getLogger(__name__)

MAX_TEXT = 4096  # Telegram's limit per message
MAX_CHUNKS = 8  # beyond this an alert is a report: truncate rather than flood the chat
MAX_ATTEMPTS = 4  # per message chunk
MAX_RETRY_AFTER = 60.0  # seconds; a longer 429 wait is capped (then bounded by MAX_ATTEMPTS)
MAX_BACKOFF = 10.0
TRUNCATED_NOTE = "\n[truncated: {dropped} more characters did not fit in {messages} messages]"

TAG_RESERVE = 256  # room kept per message for tags closed and reopened across a cut

_TOKEN_IN_PATH = re.compile(r"/bot[^/\s\"']+")
_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)[^<>]*>")


def escape_html(text: str) -> str:
    """Escape ``<``, ``>`` and ``&`` for ``parse_mode=HTML`` (SMTP replies are full of them)."""
    return html.escape(text, quote=False)


def _markup_start(text: str, pos: int) -> int | None:
    """Where the ``<tag>`` or ``&entity;`` that a cut before ``pos`` would split begins."""
    lt = text.rfind("<", 0, pos)
    if lt > text.rfind(">", 0, pos):
        return lt
    amp = text.rfind("&", max(0, pos - 12), pos)
    if amp >= 0 and ";" not in text[amp:pos] and " " not in text[amp:pos]:
        return amp
    return None


def _safe_cut(line: str, limit: int) -> int:
    """Where to cut a line longer than ``limit``: after a space if one is near, never in markup.

    A cut through ``&amp;`` or ``<a href=...>`` makes Telegram reject the message ("can't parse
    entities"), so the cut backs up to just before it.
    """
    space = line.rfind(" ", max(0, limit - 200), limit)
    if space > 0 and _markup_start(line, space + 1) is None:
        return space + 1
    start = _markup_start(line, limit)
    return start if start else limit


def _tag_name(tag: str) -> str:
    match = _TAG.match(tag)
    return match.group(2).lower() if match else ""


def _balance(chunks: list[str]) -> list[str]:
    """Close the tags a chunk leaves open and reopen them at the start of the next chunk.

    A ``<pre>`` block or a ``<b>`` run that spans a cut would otherwise leave one message with an
    unclosed tag and the next with a stray closing one; Telegram rejects both.
    """
    out: list[str] = []
    carry: list[str] = []
    for chunk in chunks:
        text = "".join(carry) + chunk
        stack: list[str] = []
        for match in _TAG.finditer(text):
            name = match.group(2).lower()
            if not match.group(1):
                stack.append(match.group(0))
                continue
            for i in range(len(stack) - 1, -1, -1):
                if _tag_name(stack[i]) == name:
                    del stack[i]
                    break
        out.append(text + "".join(f"</{_tag_name(t)}>" for t in reversed(stack)))
        carry = stack
    return out


def split_text(text: str, limit: int = MAX_TEXT, max_chunks: int = MAX_CHUNKS) -> list[str]:
    """Messages of at most ``limit`` characters, cut at line boundaries where possible.

    A line longer than the room left is cut at a space, never inside a tag or an entity; tags
    open across a cut are closed and reopened (room for that is kept when the text has tags).
    Past ``max_chunks`` the rest is dropped and the last message ends with
    :data:`TRUNCATED_NOTE`, so one runaway report cannot flood the chat or the rate limit.
    """
    has_tags = _TAG.search(text) is not None
    room = limit - (TAG_RESERVE if has_tags else 0)
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > room:
            if current:
                chunks.append(current)
                current = ""
            cut = _safe_cut(line, room)
            chunks.append(line[:cut])
            line = line[cut:]
        if len(current) + len(line) > room:
            chunks.append(current)
            current = ""
        current += line
    if current or not chunks:
        chunks.append(current)
    chunks = [c.rstrip("\n") for c in chunks if c.strip()] or [text]  # no blank messages
    if len(chunks) > max_chunks:
        dropped = sum(len(c) for c in chunks[max_chunks:])
        note = TRUNCATED_NOTE.format(dropped=dropped, messages=max_chunks)
        chunks = chunks[:max_chunks]
        last, keep = chunks[-1], room - len(note)
        if len(last) > keep:
            newline = last.rfind("\n", 0, keep)
            last = last[: newline if newline > 0 else _safe_cut(last, keep)]
        chunks[-1] = last + note
    return _balance(chunks) if has_tags else chunks


class _MaskToken(logging.Filter):
    """Rewrites a record whose text contains ``/bot<token>`` (httpx logs every request URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = _TOKEN_IN_PATH.sub("/bot***", text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


@contextmanager
def _token_masked() -> Iterator[None]:
    logger = logging.getLogger("httpx")
    mask = _MaskToken()
    logger.addFilter(mask)
    try:
        yield
    finally:
        logger.removeFilter(mask)


def _describe(payload: Any, status: int) -> tuple[str, dict[str, Any]]:
    """Telegram's ``description`` and ``parameters``, or a stand-in for a non-JSON reply."""
    if isinstance(payload, dict):
        params = payload.get("parameters")
        return str(payload.get("description") or f"HTTP {status}"), (
            params if isinstance(params, dict) else {}
        )
    return f"HTTP {status}", {}


def _retry_after(params: dict[str, Any]) -> float:
    try:
        wait = float(params.get("retry_after", 1))
    except (TypeError, ValueError):
        wait = 1.0
    return min(max(wait, 0.0), MAX_RETRY_AFTER)


def _refusal(status: int, description: str, params: dict[str, Any]) -> NotifyError:
    """A one-line error for an answer no retry can fix, saying which setting to change."""
    if status == 401:
        return NotifyError(
            "Telegram refused the bot token (401 Unauthorized); "
            "set INBOXOPS_TELEGRAM_BOT_TOKEN to the token @BotFather gave you"
        )
    if "migrate_to_chat_id" in params:
        return NotifyError(
            "Telegram: the group was upgraded to a supergroup; set "
            f"INBOXOPS_TELEGRAM_CHAT_ID={params['migrate_to_chat_id']}"
        )
    if status == 403:
        return NotifyError(
            f"Telegram refused to post ({description}); add the bot to the chat (or unblock it)"
        )
    if "chat not found" in description.lower():
        return NotifyError(
            f"Telegram: {description}; check INBOXOPS_TELEGRAM_CHAT_ID and that the bot "
            "has been added to that chat"
        )
    if status == 404:
        return NotifyError(
            "Telegram API answered 404 Not Found; check INBOXOPS_TELEGRAM_API_URL "
            "(default https://api.telegram.org)"
        )
    return NotifyError(f"Telegram rejected the message ({status}: {description})")


def send_telegram(
    settings: TelegramSettings,
    text: str,
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send ``text`` (HTML, escaped by the caller) to the configured chat, split if long.

    ``transport`` and ``sleep`` are injection points for tests and embedding; the default
    sleeps for real between retries.
    """
    if not settings.configured:
        raise NotifyError(
            "Telegram is not configured; set INBOXOPS_TELEGRAM_BOT_TOKEN and "
            "INBOXOPS_TELEGRAM_CHAT_ID"
        )
    if not text.strip():
        raise NotifyError("refusing to send an empty Telegram message (Telegram rejects those)")
    token = settings.bot_token.reveal()
    url = f"{settings.api_url.rstrip('/')}/bot{token}/sendMessage"
    chunks = split_text(text)
    with _token_masked(), httpx.Client(timeout=settings.timeout, transport=transport) as client:
        for done, chunk in enumerate(chunks):
            try:
                _send_one(client, url, settings.chat_id, chunk, sleep, token)
            except NotifyError as exc:
                if not done:
                    raise
                raise NotifyError(f"{exc} ({done} of {len(chunks)} parts were sent)") from None
    log.info("event=telegram_sent chat=%s messages=%d", settings.chat_id, len(chunks))


def _send_one(
    client: httpx.Client,
    url: str,
    chat_id: str,
    text: str,
    sleep: Callable[[float], None],
    token: str,
) -> None:
    body = {
        "chat_id": chat_id,
        "text": text,
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }
    last = "no attempt made"
    for attempt in range(1, MAX_ATTEMPTS + 1):
        wait = min(2.0 ** (attempt - 1), MAX_BACKOFF)
        try:
            response = client.post(url, json=body)
        except httpx.TimeoutException:
            last = "timed out"
        except httpx.TransportError as exc:
            last = f"connection failed ({type(exc).__name__})"  # str(exc) may hold the URL
        except (httpx.RequestError, httpx.InvalidURL) as exc:
            # not a passing network fault (bad URL, undecodable reply): retrying changes nothing
            raise NotifyError(
                f"cannot send to Telegram ({type(exc).__name__}); check INBOXOPS_TELEGRAM_API_URL"
            ) from None
        else:
            try:
                payload = response.json()
            except ValueError:
                payload = None
            status = response.status_code
            if status == 200 and isinstance(payload, dict) and payload.get("ok"):
                log.debug("event=telegram_chunk_sent chat=%s attempt=%d", chat_id, attempt)
                return
            description, params = _describe(payload, status)
            description = description.replace(token, "***")  # a proxy might echo the path
            if status == 429:
                wait = _retry_after(params)
                last = f"rate limited: {description}"
            elif status >= 500:
                last = f"server error {status}"
            else:
                raise _refusal(status, description, params)
        log.warning("event=telegram_retry attempt=%d reason=%s", attempt, last)
        if attempt < MAX_ATTEMPTS:
            sleep(wait)
    raise NotifyError(
        f"Telegram did not accept the message after {MAX_ATTEMPTS} tries ({last}); "
        "check INBOXOPS_TELEGRAM_API_URL and network access"
    )
