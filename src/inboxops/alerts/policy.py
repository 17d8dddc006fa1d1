"""The repeat/resolve policy, pure: findings and what was sent before in, a plan out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Finding(Generic[T]):
    """One alert condition: ``kind`` (own_ip_failing, rep_blocks...), ``key`` (what it is about:
    an IP, "IP operator", a pool) and ``magnitude`` (what doubling is measured on). ``alert``
    is the capability's own value, carried through untouched."""

    kind: str
    key: str
    magnitude: int
    alert: T


@dataclass(frozen=True)
class Sent:
    """What an alert last told the operator."""

    last_sent_at: datetime
    magnitude: int


@dataclass
class Plan(Generic[T]):
    due: list[Finding[T]] = field(default_factory=list)  # send now
    suppressed: list[Finding[T]] = field(default_factory=list)  # sent, not due again yet
    cleared: list[tuple[str, str]] = field(default_factory=list)  # (kind, key) sent, gone now


def due(magnitude: int, previous: Sent | None, now: datetime, repeat: timedelta) -> bool:
    """Send now? New alerts yes; known ones once ``repeat`` has passed or they doubled.

    An hourly cron over a 7-day window would otherwise page the operator 168 times for one
    spoofer.
    """
    if previous is None:
        return True
    if now - previous.last_sent_at >= repeat:
        return True
    return magnitude >= 2 * max(previous.magnitude, 1)


def plan(
    findings: Iterable[Finding[T]],
    previous: Mapping[tuple[str, str], Sent],
    now: datetime,
    repeat: timedelta,
) -> Plan[T]:
    """Which findings to send now, which were already said, which alerts have cleared.

    ``previous`` holds only the kinds of the capability asking, so one capability's run never
    resolves another's alerts.
    """
    out: Plan[T] = Plan()
    current: set[tuple[str, str]] = set()
    for f in findings:
        current.add((f.kind, f.key))
        if due(f.magnitude, previous.get((f.kind, f.key)), now, repeat):
            out.due.append(f)
        else:
            out.suppressed.append(f)
    out.cleared = sorted(k for k in previous if k not in current)
    return out
