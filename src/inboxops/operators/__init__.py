"""Receiving operators: who runs the MX hosts our mail goes to (pure; no DNS here).

``table`` is the built-in data, ``classify`` the matcher. DNS answers come from
:mod:`inboxops.dns`; callers pass its MX records (``(preference, host)`` pairs) in.
"""

from __future__ import annotations

from inboxops.operators.classify import (
    Classifier,
    HostMatch,
    MxClassification,
    normalize_host,
    parse_user_rules,
    relay_host,
)
from inboxops.operators.table import KINDS, OPERATORS, OTHER, RULES, Operator, Rule

__all__ = [
    "KINDS",
    "OPERATORS",
    "OTHER",
    "RULES",
    "Classifier",
    "HostMatch",
    "MxClassification",
    "Operator",
    "Rule",
    "normalize_host",
    "parse_user_rules",
    "relay_host",
]
