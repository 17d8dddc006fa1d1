"""Every other channel (Slack, Matrix, e-mail, ntfy, webhooks...) through apprise URLs.

apprise is an optional extra: a deployment that only uses Telegram does not need it, so it is
imported on first use. Its URLs carry credentials (webhook tokens, passwords), and apprise and
urllib3 log URLs on errors and at debug level; so we never print a URL, name a failing channel
only by its position and scheme (``#2 (slack)``), and while apprise runs, a filter masks every
part of our URLs in what those loggers emit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

from inboxops.config import Secret
from inboxops.errors import NotifyError

log = logging.getLogger(__name__)

_CHATTY_LOGGERS = (
    "apprise",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.util.retry",
)
_MIN_FRAGMENT = 4  # shorter URL parts are too common to mask (passwords are masked whatever size)


def scheme(url: str) -> str:
    """The part before ``://``: safe to show, and enough for the operator to find the URL."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep and head.isalnum() else "?"


def secret_fragments(url: str) -> set[str]:
    """Every part of an apprise URL that might be a credential, raw and percent-decoded.

    Which part is the secret depends on the service (``slack://T/B/token``, ``tgram://token/``,
    ``mailto://user:password@host``), so all of them are masked: over-masking a log line costs
    nothing, a leaked webhook token costs a rotation.
    """
    found = {url, url.partition("://")[2]}
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        parts, password = None, None
    if password:
        found.update((password, unquote(password)))
    if parts is not None:
        pieces = [parts.netloc, *parts.netloc.replace("@", ":").split(":")]
        pieces += parts.path.split("/") + parts.query.replace("&", "=").split("=")
        pieces.append(parts.fragment)
        found.update(p for raw in pieces for p in (raw, unquote(raw)) if len(p) >= _MIN_FRAGMENT)
    return {f for f in found if f}


class _Mask(logging.Filter):
    def __init__(self, fragments: Iterable[str]) -> None:
        super().__init__()
        self._fragments = sorted(set(fragments), key=len, reverse=True)  # longest first

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
        masked = text
        for fragment in self._fragments:
            masked = masked.replace(fragment, "***")
        record.msg, record.args = masked, None
        return True


@contextmanager
def _masked(urls: Sequence[Secret]) -> Iterator[None]:
    mask = _Mask(f for url in urls for f in secret_fragments(url.reveal()))
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    for logger in loggers:
        logger.addFilter(mask)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(mask)


def send_apprise(urls: Sequence[Secret], title: str, body: str) -> None:
    """Notify every URL (plain-text ``body``); raise NotifyError naming the ones that failed.

    Each URL gets its own attempt, so one dead webhook does not hide the others' results.
    """
    try:
        import apprise
    except ImportError:
        raise NotifyError(
            "install inboxops[apprise] to use INBOXOPS_NOTIFY_URLS "
            "(pip install 'inboxops[apprise]')"
        ) from None
    failed: list[str] = []
    with _masked(urls):
        for i, secret in enumerate(urls, 1):
            url = secret.reveal()
            name = f"#{i} ({scheme(url)})"
            sender = apprise.Apprise()
            try:
                if not sender.add(url):
                    failed.append(f"{name}: not a URL apprise understands")
                    continue
                ok = sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
            except Exception as exc:  # a third-party plugin bug must not stop the other URLs
                failed.append(f"{name}: {type(exc).__name__}")
                continue
            if ok:
                log.info("event=apprise_sent channel=%d scheme=%s", i, scheme(url))
            else:
                failed.append(f"{name}: refused or unreachable")
                log.warning("event=apprise_failed channel=%d scheme=%s", i, scheme(url))
    if failed:
        raise NotifyError(
            f"INBOXOPS_NOTIFY_URLS {'; '.join(failed)}; check those URLs "
            "(numbered from 1 in the order given; -v shows more)"
        )
