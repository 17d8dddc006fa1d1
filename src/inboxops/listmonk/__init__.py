"""listmonk: a typed client for the calls list hygiene needs, on any number of instances.

:class:`ListmonkClient` speaks the HTTP API of one :class:`ListmonkInstance` (v2 to v6); the
dataclasses in :mod:`inboxops.listmonk.model` are what it hands out. Scrub and prune build on it.
"""

from __future__ import annotations

from inboxops.listmonk.api import MAX_RETRIES
from inboxops.listmonk.client import BATCH_SIZE, PAGE_SIZE, ListmonkClient
from inboxops.listmonk.model import (
    ListmonkInstance,
    ListmonkVersion,
    MailingList,
    Page,
    Subscriber,
    Subscription,
    parse_version,
)

__all__ = [
    "BATCH_SIZE",
    "MAX_RETRIES",
    "PAGE_SIZE",
    "ListmonkClient",
    "ListmonkInstance",
    "ListmonkVersion",
    "MailingList",
    "Page",
    "Subscriber",
    "Subscription",
    "parse_version",
]
