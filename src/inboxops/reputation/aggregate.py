"""The daily figures computed in memory from collector rows. Pure.

The store computes the same figures in SQL, incrementally and idempotently across runs (what
``reputation ingest`` uses). This is the one-pass version over one stream: what the benchmark
times as "parse + classify + aggregate", and an independent oracle that the tests hold the SQL
rollup to. The definitions are :mod:`inboxops.reputation.metrics`'s.

A big log read by several processes (:mod:`.parallel`) is aggregated per byte range: each
reader hands over its :class:`Partial`, and :meth:`Aggregator.merge` joins them in log order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from inboxops.reputation.collect import NO_OPERATOR, Batch, Row
from inboxops.reputation.metrics import Figures

Key = tuple[date, str, str, str]  # day, syslog name, operator, segment
RecipientKey = tuple[str, str, str]  # scope, queue id, recipient
# a recipient's latest attempt: ts, final (0 for a deferral), status, syslog name, operator,
# segment
Latest = tuple[float, int, str, str, str, str]

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


@dataclass
class Partial:
    """What an :class:`Aggregator` has counted so far, to be merged into another (plain values
    that pickle cheaply: one per reader process)."""

    attempts: dict[Key, tuple[Figures, set[RecipientKey]]] = field(default_factory=dict)
    last: dict[RecipientKey, Latest] = field(default_factory=dict)
    expiries: dict[tuple[str, str], float] = field(default_factory=dict)
    notices: set[tuple[str, str]] = field(default_factory=set)
    unsure: list[Row] = field(default_factory=list)


class Aggregator:
    """Feed it batches; :meth:`figures` gives the figures per day x syslog name x operator.

    ``undecided`` is the operator counted for rows whose operator is not decided yet
    (``relay=none`` attempts, which only an MX lookup could place).
    """

    def __init__(self, *, undecided: str = NO_OPERATOR) -> None:
        self.undecided = undecided
        self._state = Partial()
        # per key: its attempt counters and the recipients attempted
        self._attempts = self._state.attempts
        # each recipient's latest attempt: the latest in time, a final status over a deferral
        # in the same second, then the later in log order
        self._last = self._state.last
        self._days: dict[float, date] = {}
        self._figures: dict[Key, Figures] | None = None
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
        state = self._state
        self._figures = None
        state.notices.update((scope, qid) for scope, qid, _ in batch.notices)
        expiries = state.expiries
        for scope, qid, ts in batch.expiries:
            expiries[(scope, qid)] = max(ts, expiries.get((scope, qid), ts))
        sure = [r for r in batch.rows if r.sender_known]
        if len(sure) < len(batch.rows):
            state.unsure.extend(r for r in batch.rows if not r.sender_known)
        self._count(sure)

    def partial(self) -> Partial:
        """Everything counted so far, for :meth:`merge` into another aggregator."""
        return self._state

    def merge(self, other: Partial) -> None:
        """Join what another aggregator counted over the part of the log that follows
        everything counted here (so its attempts win ties, as later lines do)."""
        state = self._state
        self._figures = None
        attempts = self._attempts
        for key, (f, recipients) in other.attempts.items():
            mine = attempts.get(key)
            if mine is None:
                attempts[key] = (f, recipients)
            else:
                mine[0].add(f)
                mine[1].update(recipients)
        last = self._last
        keep = {}
        for rkey in last.keys() & other.last.keys():  # recipients attempted in both parts
            old, new = last[rkey], other.last[rkey]
            if new[0] < old[0] or (new[0] == old[0] and new[1] < old[1]):
                keep[rkey] = old
        last.update(other.last)
        last.update(keep)
        expiries = state.expiries
        for queue, ts in other.expiries.items():
            expiries[queue] = max(ts, expiries.get(queue, ts))
        state.notices |= other.notices
        state.unsure.extend(other.unsure)

    def _count(self, rows: list[Row]) -> None:
        attempts, last, days, day_of = self._attempts, self._last, self._days, self._day
        reason_field, undecided = _REASON_FIELD, self.undecided
        for r in rows:
            ts = r.ts
            day = days.get(ts // 86400) or day_of(ts)
            operator = r.operator or undecided
            key = (day, r.syslog_name, operator, r.segment)
            entry = attempts.get(key)
            if entry is None:
                entry = attempts[key] = (Figures(), set())
            f = entry[0]
            f.attempts += 1
            rkey = (r.scope, r.queue_id, r.recipient)
            entry[1].add(rkey)
            status = r.status
            final = 1
            if status == "deferred":
                f.deferrals += 1
                final = 0
            reason = reason_field.get(r.reason)
            if reason is not None:
                setattr(f, reason, getattr(f, reason) + 1)
                if reason == "policy_blocked" and r.code == 550 and r.dsn == "5.7.1":
                    f.policy_blocked_550_571 += 1
            previous = last.get(rkey)
            # ties go to the later row: log order
            if previous is None or ts > previous[0] or (ts == previous[0] and final >= previous[1]):
                last[rkey] = (ts, final, status, r.syslog_name, operator, r.segment)

    def figures(self) -> dict[Key, Figures]:
        """The figures of everything added (computed once until more is added)."""
        state = self._state
        if state.unsure:
            notices = state.notices
            self._count([r for r in state.unsure if (r.scope, r.queue_id) not in notices])
            self.notices_found = sum((r.scope, r.queue_id) in notices for r in state.unsure)
            state.unsure = []
            self._figures = None
        if self._figures is not None:
            return self._figures
        out: dict[Key, Figures] = {}
        for key, (f, recipients) in self._attempts.items():
            copy = Figures()
            copy.add(f)
            copy.recipients = len(recipients)
            out[key] = copy
        # outcomes per key and status first, then onto the figures: fewer dynamic attributes
        outcomes: dict[tuple[Key, str], int] = {}
        expiries, days, day_of = state.expiries, self._days, self._day
        for (scope, qid, _), (ts, _final, status, name, operator, segment) in self._last.items():
            when = ts
            if status == "deferred":
                expiry = expiries.get((scope, qid))
                if expiry is not None and expiry >= ts:
                    status, when = "expired", expiry
            day = days.get(when // 86400) or day_of(when)
            okey = ((day, name, operator, segment), status)
            outcomes[okey] = outcomes.get(okey, 0) + 1
        for (key, status), n in outcomes.items():
            target = out.get(key)
            if target is None:
                target = out[key] = Figures()
            name = _OUTCOME_FIELD.get(status, "pending")
            setattr(target, name, getattr(target, name) + n)
        self._figures = out
        return out


def aggregate(batches: Iterable[Batch]) -> dict[Key, Figures]:
    agg = Aggregator()
    for batch in batches:
        agg.add(batch)
    return agg.figures()
