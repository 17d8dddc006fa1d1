"""The daily figures computed in memory from collector rows. Pure.

The store computes the same figures in SQL, incrementally and idempotently across runs (what
``reputation ingest`` uses). This is the one-pass version over one stream: what the benchmark
times as "parse + classify + aggregate", and an independent oracle that the tests hold the SQL
rollup to. The definitions are :mod:`inboxops.reputation.metrics`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from inboxops.reputation.collect import Batch, Row
from inboxops.reputation.metrics import Figures

Key = tuple[date, str, str, str]  # day, syslog name, operator, segment

_REASON_FIELD = {
    "throttled": "throttled",
    "policy_block": "policy_blocked",
    "auth_failure": "auth_failures",
    "user_unknown": "user_unknown",
    "mailbox_full": "mailbox_full",
    "greeting_block": "greeting_blocks",
    "connection": "connection_failures",
    "dns": "dns_failures",
}
_OUTCOME_FIELD = {"sent": "delivered", "bounced": "bounced", "expired": "expired"}


class Aggregator:
    """Feed it batches; :meth:`figures` gives the figures per day x syslog name x operator."""

    def __init__(self) -> None:
        self._attempts: dict[Key, Figures] = {}
        self._recipients: dict[Key, set[tuple[str, str, str]]] = {}
        # (scope, queue id, recipient) -> (ts, final, seq, row) of its latest attempt
        self._last: dict[tuple[str, str, str], tuple[float, int, int, Row]] = {}
        self._expiries: dict[tuple[str, str], float] = {}
        self._notices: set[tuple[str, str]] = set()
        self._unsure: list[Row] = []  # rows whose message's sender was not seen (yet)
        self._days: dict[float, date] = {}
        self._seq = 0
        self.notices_found = 0  # attempts of notices found only at the end

    def _day(self, ts: float) -> date:
        second = ts // 86400
        day = self._days.get(second)
        if day is None:
            day = self._days[second] = datetime.fromtimestamp(second * 86400, UTC).date()
        return day

    def add(self, batch: Batch) -> None:
        """Count a batch; a row whose sender is unknown waits: its message may be a notice
        whose ``from=<>`` line lies in another batch (another process's range)."""
        self._notices.update((scope, qid) for scope, qid, _ in batch.notices)
        for scope, qid, ts in batch.expiries:
            self._expiries[(scope, qid)] = max(ts, self._expiries.get((scope, qid), ts))
        sure = [r for r in batch.rows if r.sender_known]
        self._unsure.extend(r for r in batch.rows if not r.sender_known)
        self._count(sure)

    def _count(self, rows: list[Row]) -> None:
        attempts, recipients, last, days = self._attempts, self._recipients, self._last, self._days
        for r in rows:
            self._seq += 1
            day = days.get(r.ts // 86400) or self._day(r.ts)
            key = (day, r.syslog_name, r.operator, r.segment)
            f = attempts.get(key)
            if f is None:
                f = attempts[key] = Figures()
                recipients[key] = set()
            f.attempts += 1
            rkey = (r.scope, r.queue_id, r.recipient)
            recipients[key].add(rkey)
            if r.status == "deferred":
                f.deferrals += 1
            field = _REASON_FIELD.get(r.reason)
            if field is not None:
                setattr(f, field, getattr(f, field) + 1)
                if field == "policy_blocked" and r.code == 550 and r.dsn == "5.7.1":
                    f.policy_blocked_550_571 += 1
            rank = (r.ts, 0 if r.status == "deferred" else 1, self._seq)
            previous = last.get(rkey)
            if previous is None or rank >= previous[:3]:
                last[rkey] = (*rank, r)

    def figures(self) -> dict[Key, Figures]:
        if self._unsure:
            notices = self._notices
            self._count([r for r in self._unsure if (r.scope, r.queue_id) not in notices])
            self.notices_found = sum((r.scope, r.queue_id) in notices for r in self._unsure)
            self._unsure = []
        out: dict[Key, Figures] = {}
        for key, f in self._attempts.items():
            copy = Figures()
            copy.add(f)
            copy.recipients = len(self._recipients[key])
            out[key] = copy
        for ts, _final, _seq, row in self._last.values():
            status, when = row.status, ts
            expiry = self._expiries.get((row.scope, row.queue_id))
            if status == "deferred" and expiry is not None and expiry >= ts:
                status, when = "expired", expiry
            key = (self._day(when), row.syslog_name, row.operator, row.segment)
            target = out.get(key)
            if target is None:
                target = out[key] = Figures()
            field = _OUTCOME_FIELD.get(status, "pending")
            setattr(target, field, getattr(target, field) + 1)
        return out


def aggregate(batches: Iterable[Batch]) -> dict[Key, Figures]:
    agg = Aggregator()
    for batch in batches:
        agg.add(batch)
    return agg.figures()
