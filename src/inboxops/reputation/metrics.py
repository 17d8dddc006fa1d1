"""Daily figures per sending IP x operator, and the SNDS-style colour of each. Pure.

Definitions (docs/reputation.md keeps the same table):

* ``attempts``: delivery attempts to external recipients; ``recipients``: distinct
  (queue id, recipient) pairs attempted that day;
* ``delivered``, ``bounced``, ``expired``: final outcomes, counted on the day of the recipient's
  last attempt (or its expiry) for the IP and operator of that attempt; ``pending``: recipients
  whose last attempt so far was deferred;
* ``deferrals``: deferred attempts; ``throttled``, ``policy_blocked``, ``auth_failures``,
  ``user_unknown``: attempts in that reason class;
* ``delivery_rate`` = delivered / (delivered + bounced + expired), None when nothing is final.

Colour (``[reputation.colours]``): **red** when the delivery rate is below ``red_below`` or policy
blocks reach ``red_block_share`` of attempts; **yellow** when it is below ``green_from`` or
throttles plus blocks reach ``yellow_trouble_share``; **green** otherwise; none on a day without
attempts or outcomes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date

from inboxops.config.reputation import ColourSettings

GREEN, YELLOW, RED = "green", "yellow", "red"

METRICS = (
    "attempts",
    "recipients",
    "delivered",
    "bounced",
    "expired",
    "pending",
    "deferrals",
    "throttled",
    "policy_blocked",
    "auth_failures",
    "user_unknown",
)


@dataclass
class Figures:
    """Counters of one day x IP x operator (or a sum of several)."""

    attempts: int = 0
    recipients: int = 0
    delivered: int = 0
    bounced: int = 0
    expired: int = 0
    pending: int = 0
    deferrals: int = 0
    throttled: int = 0
    policy_blocked: int = 0
    policy_blocked_550_571: int = 0
    auth_failures: int = 0
    user_unknown: int = 0
    mailbox_full: int = 0
    greeting_blocks: int = 0
    connection_failures: int = 0
    dns_failures: int = 0

    def add(self, other: Figures) -> None:
        for name in COUNTER_NAMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def final(self) -> int:
        return self.delivered + self.bounced + self.expired

    @property
    def delivery_rate(self) -> float | None:
        return self.delivered / self.final if self.final else None


COUNTER_NAMES = tuple(f.name for f in fields(Figures))


def colour(f: Figures, thresholds: ColourSettings) -> str | None:
    """The day's verdict (see the module docstring); None when there is nothing to judge."""
    if not f.attempts and not f.final:
        return None
    rate = f.delivery_rate
    blocks = f.policy_blocked / f.attempts if f.attempts else 0.0
    trouble = (f.throttled + f.policy_blocked) / f.attempts if f.attempts else 0.0
    if (rate is not None and rate < thresholds.red_below) or blocks >= thresholds.red_block_share:
        return RED
    if (rate is not None and rate < thresholds.green_from) or (
        trouble >= thresholds.yellow_trouble_share
    ):
        return YELLOW
    return GREEN


@dataclass
class DayRow:
    """One day x sending IP x operator, as ``reputation trend`` reports it."""

    day: date
    sending_ip: str
    operator: str
    segment: str
    figures: Figures = field(default_factory=Figures)

    def as_json(self, thresholds: ColourSettings) -> dict[str, object]:
        f = self.figures
        out: dict[str, object] = {
            "date": self.day.isoformat(),
            "sending_ip": self.sending_ip,
            "operator": self.operator,
            "segment": self.segment or None,
        }
        out.update({name: getattr(f, name) for name in METRICS})
        rate = f.delivery_rate
        out["delivery_rate"] = round(rate, 4) if rate is not None else None
        out["colour"] = colour(f, thresholds)
        return out


def merge(rows: Iterable[DayRow]) -> Figures:
    total = Figures()
    for row in rows:
        total.add(row.figures)
    return total
