"""Time windows of the report commands: ``--days N`` or ``--since D [--until D]``, in UTC.

Pure and shared: DMARC views and the reputation trend read the same flags the same way.

* A window is half-open, ``[since, until)``, so adjacent windows never share an instant; each
  capability says which instant of its data falls into a window (DMARC: the midpoint of a
  report's date range, docs/dmarc-summary.md).
* ``--since``/``--until`` take a date (``2024-03-06``) or an ISO 8601 date-time with or without
  an offset (``2024-03-06T00:00:00Z``, ``2024-03-06 14:00+02:00``); values without an offset are
  UTC. A date given to ``--until`` includes that whole day.
* An empty or inverted window, or one outside the calendar, is a usage error (exit 2), never
  a silently "healthy" report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

MAX_DAYS = 36_600  # a century: beyond that `--days` is a typo, and dates overflow
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class WindowError(ValueError):
    """A window the user asked for cannot exist; the message says why."""


@dataclass(frozen=True)
class When:
    """A ``--since``/``--until`` value: the instant, and whether only a date was given."""

    at: datetime
    date_only: bool


def parse_when(text: str) -> When:
    """``2024-03-06``, ``2024-03-06T00:00:00Z``, ``2024-03-06 14:00:00+02:00`` -> UTC."""
    value = text.strip()
    if _DATE_ONLY.match(value):
        try:
            day = date.fromisoformat(value)
        except ValueError as exc:
            raise WindowError(f"{text!r} is not a calendar date ({exc})") from None
        return When(datetime(day.year, day.month, day.day, tzinfo=UTC), True)
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1) if " " in value else value)
    except ValueError:
        raise WindowError(
            f"{text!r} is not a date or ISO 8601 date-time; use e.g. 2024-03-06 or "
            "2024-03-06T00:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return When(parsed.astimezone(UTC), False)


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    def describe(self) -> str:
        return f"{self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC"

    def contains(self, instant: datetime) -> bool:
        return self.since <= instant < self.until

    def days(self) -> list[date]:
        """The calendar days (UTC) the window touches, oldest first."""
        first = self.since.date()
        last = (self.until - timedelta(microseconds=1)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def window_from(
    now: datetime,
    days: int | None,
    since: When | datetime | None,
    until: When | datetime | None,
    *,
    default_days: int = 7,
) -> Window:
    """The window the flags describe; raises WindowError for an impossible one.

    ``--days N`` ends at ``--until`` (default now); ``--since`` alone ends now; ``--until``
    alone starts ``default_days`` before it.
    """
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise WindowError(f"--days must be between 1 and {MAX_DAYS}, not {days}")
    if days is not None and since is not None:
        raise WindowError("use either --days or --since/--until, not both")
    end = _instant(until, end=True) if until is not None else _aware(now)
    try:
        if since is not None:
            start = _instant(since, end=False)
        else:
            start = end - timedelta(days=days or default_days)
    except OverflowError:
        raise WindowError("the window reaches before the year 1; use a shorter one") from None
    if start >= end:
        raise WindowError(
            f"the window is empty or inverted ({start:%Y-%m-%d %H:%M} to "
            f"{end:%Y-%m-%d %H:%M} UTC); --since must be before --until"
        )
    return Window(start, end)


def _instant(value: When | datetime, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        return _aware(value)
    if end and value.date_only:
        try:
            return value.at + timedelta(days=1)  # --until 2024-03-06: through that whole day
        except OverflowError:
            return datetime.max.replace(tzinfo=UTC)
    return value.at


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
