"""Logging setup: results on stdout stay clean, and credential-carrying URLs never get logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from inboxops.logging import configure


@pytest.fixture
def root_at_debug() -> Iterator[logging.Logger]:
    """A host application (or a log shipper) that turned the root logger up to DEBUG."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.DEBUG)
    yield root
    root.setLevel(before)


def test_url_logging_libraries_stay_at_warning_even_with_debug(
    root_at_debug: logging.Logger,
) -> None:
    """apprise logs Slack/Telegram webhook URLs (tokens included) at DEBUG; httpx logs the
    Telegram URL with the bot token at INFO. Neither -vv nor a DEBUG root may switch them on."""
    configure(2)
    assert logging.getLogger("inboxops").isEnabledFor(logging.DEBUG)
    for name in ("apprise", "httpx", "httpcore", "urllib3", "urllib3.connectionpool"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    configure(0)
    assert not logging.getLogger("inboxops").isEnabledFor(logging.INFO)
