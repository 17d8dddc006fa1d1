"""The one place log handlers are configured.

Logs go to stderr (stdout carries results, so ``--json`` output stays parseable) as
``key=value`` lines. Under cron (no terminal) only warnings are shown unless ``-v`` is given.
Every ``%s`` argument is quoted by :func:`inboxops.untrusted.log_value` when it needs to be, so
a reporter-chosen ``report_id`` with a newline or ``level=ERROR`` in it stays one field of one
line.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from inboxops.untrusted import log_value

_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
# Libraries that log request URLs at DEBUG, and the URLs carry credentials: Telegram's bot
# token is in its path, apprise logs Slack and Telegram webhook URLs whole. Never below WARNING,
# whatever -v says or a host application sets on the root logger.
_URL_LOGGERS = ("httpx", "httpcore", "apprise", "urllib3")


class SafeFormatter(logging.Formatter):
    """``key=value`` lines whose values can never break the line or forge a field."""

    def format(self, record: logging.LogRecord) -> str:
        if record.args:
            record = logging.makeLogRecord(record.__dict__)
            record.args = _safe_args(record.args)
        return super().format(record)


def _safe_args(args: Any) -> Any:
    if isinstance(args, dict):
        return {k: _safe_one(v) for k, v in args.items()}
    return tuple(_safe_one(a) for a in args)


def _safe_one(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value  # keeps %d and %.2f working
    return log_value(value)


def configure(verbosity: int = 0) -> None:
    """Install a single stderr handler; ``verbosity`` 0 = warnings, 1 = info, 2+ = debug."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger("inboxops")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    quiet_url_loggers()


def quiet_url_loggers() -> None:
    for name in _URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
