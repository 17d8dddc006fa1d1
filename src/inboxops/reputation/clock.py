"""Syslog and RFC 3339 timestamp text -> epoch seconds, with the year of year-less stamps
inferred. Pure; used by :mod:`~inboxops.reputation.parse` (and, through its callbacks, the C
scanner), which reads one stamp per event line: so each minute is computed once and memoised.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Final

CACHE_LIMIT: Final = 50_000  # memoised minutes before a cache starts afresh

MONTHS: Final = {
    m: i + 1
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    )
}


class Clock:
    """Timestamp text -> epoch seconds, memoised per minute; infers the year of syslog stamps.

    The first syslog stamp gets ``year`` if given, else ``ref``'s year, or the year before if
    that would put it more than a day after ``ref`` (a December log read in January). Then a
    month two or more behind the current one starts a new year (Dec -> Jan); one month behind,
    or ten or more ahead, is a straggler from an interleaved log and keeps the current year
    (or the previous one), without moving the state.
    """

    def __init__(self, tz: tzinfo, year: int | None, ref: datetime) -> None:
        self.tz = tz
        self._override = year
        self._ref = ref if ref.tzinfo else ref.replace(tzinfo=tz)
        self._year = 0  # 0 until the first syslog stamp anchors it
        self._month = 0
        self._mon = ""
        self.minutes: dict[str, float] = {}  # "Nov 24 14:49" -> epoch of that minute
        self._iso_minutes: dict[str, float] = {}  # "2021-04-21T17:16+02:00" -> epoch

    def anchor(self, stamp: str) -> None:
        month = MONTHS.get(stamp[:3])
        if month is None or self._year:
            return
        if self._override is not None:
            year = self._override
        else:
            year = self._ref.year
            try:
                day = min(int(stamp[4:6]), 28)
                first = datetime(year, month, day, tzinfo=self.tz)
            except ValueError:
                first = datetime(year, month, 1, tzinfo=self.tz)
            if first.timestamp() > self._ref.timestamp() + 86400:
                year -= 1
        self._year, self._month, self._mon = year, month, stamp[:3]

    def syslog(self, stamp: str) -> float | None:
        """``Nov 24 14:49:24`` or ``Jun  4 07:00:01`` / ``Jun 04 07:00:01``; None if broken."""
        year = self._year
        if stamp[:3] != self._mon:
            if not year:
                self.anchor(stamp)
                year = self._year
            month = MONTHS.get(stamp[:3])
            if month is None or not year:
                return None
            delta = month - self._month
            if delta <= -2:  # the year turned
                year = self._year = year + 1
                self._month, self._mon = month, stamp[:3]
                self.minutes.clear()
            elif delta == -1 or delta >= 10:  # a straggler: compute, leave the state alone
                return self._compute(stamp, year - 1 if delta >= 10 else year, month)
            else:
                self._month, self._mon = month, stamp[:3]
        base = self.minutes.get(stamp[:12])
        if base is None:
            return self._compute(stamp, year, self._month, cache=True)
        try:
            return base + int(stamp[13:15])
        except ValueError:
            return None

    def _compute(self, stamp: str, year: int, month: int, *, cache: bool = False) -> float | None:
        if stamp[6] != " " or stamp[9] != ":" or stamp[12] != ":":
            return None
        try:
            day, hour, minute = int(stamp[4:6]), int(stamp[7:9]), int(stamp[10:12])
            second = int(stamp[13:15])
            base = datetime(year, month, day, hour, minute, tzinfo=self.tz).timestamp()
        except ValueError:
            return None
        if not 0 <= second <= 60:
            return None
        if cache:
            if len(self.minutes) >= CACHE_LIMIT:
                self.minutes.clear()
            self.minutes[stamp[:12]] = base
        return base + second

    def iso(self, stamp: str) -> float | None:
        """``2021-04-21T17:16:28[.ffffff][Z|+02:00|+0200]``; None if broken."""
        if stamp[-1:] == "Z":
            zone = "Z"
        elif stamp[-6:-5] in ("+", "-") and stamp[-3:-2] == ":":
            zone = stamp[-6:]
        elif stamp[-5:-4] in ("+", "-") and stamp[-4:].isdigit():
            zone = stamp[-5:]
        else:
            zone = ""  # no zone: the parser's tz
        end = len(stamp) - len(zone)
        if end < 19 or stamp[10] != "T" or stamp[16] != ":":
            return None
        if end > 19 and (stamp[19] != "." or not stamp[20:end].isdigit()):
            return None
        try:
            second = int(stamp[17:19])
            fraction = float(stamp[19:end]) if end > 19 else 0.0  # ".123456"
        except ValueError:
            return None
        if not 0 <= second <= 60:
            return None
        key = stamp[:16] + zone
        base = self._iso_minutes.get(key)
        if base is None:
            try:
                moment = datetime.fromisoformat(key)
            except ValueError:
                return None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=self.tz)
            base = moment.timestamp()
            if len(self._iso_minutes) >= CACHE_LIMIT:
                self._iso_minutes.clear()
            self._iso_minutes[key] = base
        return base + second + fraction
