"""Ages and cutoffs for every ``prune`` command (DMARC reports, reputation attempts): pure.

One grammar for an age (``400d``, ``12w``), one rule for where it comes from (the flag, then
the capability's ``retention_days``, never a silent default) and one cutoff arithmetic, so
``dmarc prune`` and ``reputation prune`` read the same way and refuse the same mistakes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from inboxops.errors import ConfigError
from inboxops.window import MAX_DAYS

_AGE = re.compile(r"^\s*(\d{1,9})\s*([dw])\s*$", re.IGNORECASE)
_UNIT_DAYS = {"d": 1, "w": 7}


def parse_age(text: str) -> int:
    """``400d`` -> 400, ``12w`` -> 84: an age in whole days; ValueError says what is accepted.

    Only days and weeks: months and years differ in length, and ``m`` would be read as
    minutes by some and months by others, so ``18m`` is refused rather than guessed.
    """
    match = _AGE.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not an age; use a whole number of days or weeks, e.g. 400d or 12w "
            "(months and years vary in length: give 540d rather than 18m)"
        )
    days = int(match.group(1)) * _UNIT_DAYS[match.group(2).lower()]
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"{text!r} must be between 1 day and {MAX_DAYS} days")
    return days


def retention_days(
    older_than: int | None, configured: int, *, section: str = "dmarc", what: str = "reports"
) -> int:
    """The age to prune at: ``--older-than`` wins, then ``[section] retention_days``.

    Neither set is a configuration error rather than a default: deleting data is not
    something to do by surprise.
    """
    if older_than is not None:
        return older_than
    if configured > 0:
        return configured
    raise ConfigError(
        f"nothing to prune by: give --older-than AGE (e.g. 400d) or set [{section}] "
        f"retention_days (0, the default, keeps {what} forever)"
    )


def cutoff_for(now: datetime, days: int) -> datetime:
    """``now - days`` in UTC; an age reaching before the year 1 keeps everything."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    try:
        return now.astimezone(UTC) - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


class TableCounts:
    """What every prune reports: rows per table that went (or would go, in a dry run)."""

    days: int
    dry_run: bool
    counts: dict[str, int]
    batches: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def counts_json(self, **when: str) -> dict[str, Any]:
        """The ``--json`` object: the age, ``when`` (the cutoff the prune used), the counts."""
        return {
            "dry_run": self.dry_run,
            "older_than_days": self.days,
            **when,
            "counts": dict(self.counts),
            "batches": self.batches,
        }
