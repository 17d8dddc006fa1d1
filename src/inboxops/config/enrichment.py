"""Settings of DMARC source enrichment: the user's own entries in the sending-service map.

``[[dmarc.services]]`` is an array of tables, so the schema checks every entry's keys and types
like any other section; :func:`service_pattern` checks each pattern once, at start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from inboxops.config.schema import setting
from inboxops.errors import ConfigError

# What a sending service is, as far as DMARC alerts care. ``forwarder`` and ``mailing_list``
# make a failing IP "forwarded" (when its PTR is forward-confirmed); ``ours`` makes it an own
# IP; ``other`` names a host without giving it a meaning (and can neutralise a built-in rule).
SERVICE_TYPES: Final[tuple[str, ...]] = (
    "esp",
    "mailbox_provider",
    "forwarder",
    "mailing_list",
    "security_gateway",
    "saas",
    "hosting",
    "ours",
    "other",
)

_ALLOWED = re.compile(r"[a-z0-9._*?-]+")


def service_pattern(text: str) -> str:
    """A host-name pattern: ``sendgrid.net`` (that name and every name below it) or a glob on
    the whole name with ``*`` (any run of characters) and ``?`` (one character), such as
    ``mail-*.google.com`` or ``lists.*``. Lower-cased by the schema; no trailing dot."""
    pattern = text.strip().rstrip(".")
    if not pattern.isascii():
        raise ValueError("ASCII host-name patterns; write an IDN as its A-label (xn--...)")
    if not _ALLOWED.fullmatch(pattern):
        raise ValueError(
            "a host name or glob of letters, digits, '.', '-', '_', '*' and '?', "
            "e.g. 'sendgrid.net' or 'mail-*.google.com'"
        )
    if not pattern.strip("*?."):
        raise ValueError("a pattern with at least one literal label, not only wildcards")
    if ".." in pattern or pattern.startswith("."):
        raise ValueError("a host name without empty labels, e.g. 'mta.example.com'")
    return pattern


@dataclass(frozen=True)
class ServiceRule:
    """One ``[[dmarc.services]]`` entry: hosts matching ``patterns`` are ``name`` of ``type``.

    User entries take precedence over the built-in map (``inboxops.dmarc.service_table``).
    """

    name: str = setting("", expect="the service's display name, e.g. 'Our newsletter relay'")
    type: str = setting("other", choices=SERVICE_TYPES, lower=True)
    patterns: tuple[str, ...] = setting(
        (), parse=service_pattern, lower=True, expect='a list like ["mta.example.com"]'
    )

    def __post_init__(self) -> None:
        if not self.name.strip() or not self.patterns:
            shown = self.name.strip() or ", ".join(self.patterns) or "(empty)"
            raise ConfigError(
                f"[[dmarc.services]] entry '{shown}' needs a name and at least one pattern, e.g. "
                'name = "Our relay", type = "ours", patterns = ["mta.example.com"]'
            )
