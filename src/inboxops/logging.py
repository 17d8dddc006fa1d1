"""The one place log handlers are configured.

Logs go to stderr (stdout carries results, so ``--json`` output stays parseable) as
``key=value`` lines. Under cron (no terminal) only warnings are shown unless ``-v`` is given.
"""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
# Libraries that log request URLs at DEBUG, and the URLs carry credentials: Telegram's bot
# token is in its path, apprise logs Slack and Telegram webhook URLs whole. Never below WARNING,
# whatever -v says or a host application sets on the root logger.
_URL_LOGGERS = ("httpx", "httpcore", "apprise", "urllib3")


def configure(verbosity: int = 0) -> None:
    """Install a single stderr handler; ``verbosity`` 0 = warnings, 1 = info, 2+ = debug."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger("inboxops")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    quiet_url_loggers()


def quiet_url_loggers() -> None:
    for name in _URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
