"""Every other channel (Slack, Matrix, e-mail, ntfy, webhooks...) through apprise URLs.

apprise is an optional extra: a deployment that only uses Telegram does not need it. The URLs
carry credentials, so they are never logged or echoed; a failure names the channel by position.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from inboxops.config import Secret
from inboxops.errors import NotifyError

log = logging.getLogger(__name__)


def send_apprise(urls: Sequence[Secret], title: str, body: str) -> None:
    """Notify every URL; raise NotifyError naming (by position) the ones that failed."""
    try:
        import apprise
    except ImportError:
        raise NotifyError(
            "INBOXOPS_NOTIFY_URLS needs the apprise extra: pip install 'inboxops[apprise]'"
        ) from None
    failed: list[str] = []
    for i, url in enumerate(urls, 1):
        sender = apprise.Apprise()
        if not sender.add(url.reveal()):
            failed.append(f"#{i} (not a valid apprise URL)")
            continue
        if not sender.notify(title=title, body=body):
            failed.append(f"#{i}")
        else:
            log.info("event=apprise_sent channel=%d", i)
    if failed:
        raise NotifyError(
            f"apprise channel(s) {', '.join(failed)} of INBOXOPS_NOTIFY_URLS failed; "
            "check those URLs with `inboxops notify test -v`"
        )
