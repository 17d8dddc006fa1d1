"""Which sending service a host name belongs to. Pure: host names in, matches out.

The map is the built-in table (:mod:`inboxops.dmarc.service_table`) plus the user's
``[[dmarc.services]]`` entries. A pattern is either

* a **domain** (no wildcard): it matches that name and every name below it, on a label
  boundary: ``sendgrid.net`` matches ``o1.ptr2.sendgrid.net``, never ``evilsendgrid.net``;
* a **glob** on the whole name: ``*`` is any run of characters (dots included), ``?`` one
  character: ``mail-*.google.com``, ``ec2-*.amazonaws.com``, ``lists.*``.

**Precedence** (so the order of entries never matters): a user entry beats a built-in one; then
the more specific pattern wins: more labels, then more literal characters (``*.mail.example.com``
beats ``mail.example.com``, which beats ``example.com``); a tie goes to the entry listed first.

A PTR name is chosen by whoever runs the IP, so a match says what the IP's owner *claims*; only
a forward-confirmed name (FCrDNS) proves that the named domain vouches for the IP. The
enrichment layer records both, and alert classification trusts only confirmed names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from inboxops.config.enrichment import SERVICE_TYPES, ServiceRule

__all__ = ["SERVICE_TYPES", "ServiceMap", "ServiceMatch"]

Source = Literal["builtin", "user"]
_WILD = frozenset("*?")


@dataclass(frozen=True, slots=True)
class ServiceMatch:
    name: str
    type: str
    pattern: str
    source: Source

    @property
    def how(self) -> str:
        user = " (user entry)" if self.source == "user" else ""
        return f"matches {self.pattern}{user} -> {self.name} ({self.type})"


@dataclass(frozen=True, slots=True)
class _Entry:
    match: ServiceMatch
    rank: tuple[int, int, int, int]  # (user, labels, literal chars, -position): higher wins
    regex: re.Pattern[str] | None  # globs only


def _rank(pattern: str, source: Source, position: int) -> tuple[int, int, int, int]:
    literal = sum(1 for ch in pattern if ch not in _WILD and ch != ".")
    return (1 if source == "user" else 0, pattern.count(".") + 1, literal, -position)


def _glob(pattern: str) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        parts.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(parts))


class ServiceMap:
    """The built-in map plus user rules; :meth:`match` answers for one host name.

    Holds no state beyond its tables and a small memo, and is safe to share between threads.
    """

    def __init__(self, user_rules: Sequence[ServiceRule] = (), *, builtin: bool = True) -> None:
        from inboxops.dmarc.service_table import SERVICES

        entries: list[_Entry] = []
        rules: list[tuple[Source, str, str, Iterable[str]]] = []
        rules += [("user", r.name.strip(), r.type, r.patterns) for r in user_rules]
        if builtin:
            rules += [("builtin", s.name, s.type, s.patterns) for s in SERVICES]
        position = 0
        for source, name, type_, patterns in rules:
            for raw in patterns:
                pattern = raw.strip().lower().rstrip(".")
                position += 1
                wild = any(ch in _WILD for ch in pattern)
                entries.append(
                    _Entry(
                        ServiceMatch(name, type_, pattern, source),
                        _rank(pattern, source, position),
                        _glob(pattern) if wild else None,
                    )
                )
        self._domains: dict[str, list[_Entry]] = {}
        for e in entries:
            if e.regex is None:
                self._domains.setdefault(e.match.pattern, []).append(e)
        self._globs = [e for e in entries if e.regex is not None]
        self._memo: dict[str, ServiceMatch | None] = {}

    def match(self, host: str | None) -> ServiceMatch | None:
        """The service of ``host`` (a PTR name), or None when no pattern claims it."""
        if not host:
            return None
        name = host.strip().lower().rstrip(".")
        if name in self._memo:
            return self._memo[name]
        best: _Entry | None = None
        labels = name.split(".")
        for i in range(len(labels)):
            for e in self._domains.get(".".join(labels[i:]), ()):
                if best is None or e.rank > best.rank:
                    best = e
        for e in self._globs:
            if (best is None or e.rank > best.rank) and e.regex and e.regex.fullmatch(name):
                best = e
        found = best.match if best else None
        if len(self._memo) < 65_536:
            self._memo[name] = found
        return found
