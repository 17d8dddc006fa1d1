"""The daily figures computed in memory from collector rows. Pure.

The store computes the same figures in SQL, incrementally and idempotently across runs (what
``reputation ingest`` uses). This is the one-pass version over one stream: what the benchmark
times as "parse + classify + aggregate", and an independent oracle that the tests hold the SQL
rollup to. The definitions are :mod:`inboxops.reputation.metrics`'s.

A big log read by several processes (:mod:`.parallel`) is aggregated per byte range: each
reader hands over its :class:`Partial`, and :meth:`Aggregator.merge` joins them in log order.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from inboxops.reputation.collect import NO_OPERATOR, Batch, Row
from inboxops.reputation.metrics import Figures

Key = tuple[date, str, str, str]  # day, syslog name, operator, segment
# A recipient is (scope, queue id, recipient), a queue (scope, queue id); both are held as
# hash() of that tuple: ints pickle and compare far faster than tuples of text, and the reader
# processes are forked, so they share the hash seed. 64 bits, like the store's digests.
RecipientKey = int
QueueKey = int
# a recipient's latest attempt: ts, final (0 for a deferral), status, the key it counts under
# (its day, unless an expiry moves it), and its queue
Latest = tuple[float, int, str, Key, QueueKey]
Outcome = tuple[Key, str]  # a key and a final status ("deferred": pending)

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

    # per key: its attempt counters, the recipients attempted, and the key itself (one tuple
    # per key, which every recipient's latest attempt refers to: pickled once)
    attempts: dict[Key, tuple[Figures, set[RecipientKey], Key]] = field(default_factory=dict)
    last: dict[RecipientKey, Latest] = field(default_factory=dict)
    # every sent or bounced attempt, and each recipient whose latest attempt is a deferral
    # (pending), kept up to date as rows come
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    # every expiry of each queue: a reused queue id can carry several (see figures())
    expiries: dict[QueueKey, list[float]] = field(default_factory=dict)
    notices: set[tuple[str, str]] = field(default_factory=set)
    unsure: list[Row] = field(default_factory=list)


def _newer(new: Latest, old: Latest) -> bool:
    """Whether ``new`` (later in log order) replaces ``old`` as a recipient's latest attempt:
    the later in time, a final status over a deferral in the same second, else log order."""
    return new[0] > old[0] or (new[0] == old[0] and new[1] >= old[1])


class Aggregator:
    """Feed it batches; :meth:`figures` gives the figures per day x syslog name x operator.

    ``undecided`` is the operator counted for rows whose operator is not decided yet
    (``relay=none`` attempts, which only an MX lookup could place).
    """

    def __init__(self, *, undecided: str = NO_OPERATOR) -> None:
        self.undecided = undecided
        self._state = Partial()
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
            expiries.setdefault(hash((scope, qid)), []).append(ts)
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
        attempts = state.attempts
        for key, (f, recipients, _) in other.attempts.items():
            mine = attempts.get(key)
            if mine is None:
                attempts[key] = (f, recipients, key)
            else:
                mine[0].add(f)
                mine[1].update(recipients)
        last, outcomes = state.last, state.outcomes
        theirs = Counter(other.outcomes)
        keep = {}
        for rkey in last.keys() & other.last.keys():  # recipients attempted in both parts
            old, new = last[rkey], other.last[rkey]
            if _newer(new, old):  # the later part's attempt stands: a deferral here no longer
                if not old[1]:  # pends
                    outcomes[(old[3], "deferred")] -= 1
            else:
                keep[rkey] = old
                if not new[1]:
                    theirs[(new[3], "deferred")] -= 1
        last.update(other.last)
        last.update(keep)
        outcomes.update(theirs)
        expiries = state.expiries
        for queue, times in other.expiries.items():
            expiries.setdefault(queue, []).extend(times)
        state.notices |= other.notices
        state.unsure.extend(other.unsure)

    def _count(self, rows: list[Row]) -> None:
        state = self._state
        attempts, last, outcomes = state.attempts, state.last, state.outcomes
        days, day_of = self._days, self._day
        reason_field, undecided = _REASON_FIELD, self.undecided
        for r in rows:
            ts = r.ts
            day = days.get(ts // 86400) or day_of(ts)
            operator = r.operator or undecided
            key = (day, r.syslog_name, operator, r.segment)
            entry = attempts.get(key)
            if entry is None:
                entry = attempts[key] = (Figures(), set(), key)
            key = entry[2]
            f = entry[0]
            f.attempts += 1
            scope, qid = r.scope, r.queue_id
            rkey = hash((scope, qid, r.recipient))
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
            if final:  # a sent or bounced attempt is its recipient's final outcome
                outcomes[(key, status)] += 1
            latest = (ts, final, status, key, hash((scope, qid)))
            previous = last.get(rkey)
            if previous is None or _newer(latest, previous):  # ties: the later row (log order)
                if previous is not None and not previous[1]:
                    outcomes[(previous[3], "deferred")] -= 1  # no longer pending there
                if not final:
                    outcomes[(key, status)] += 1
                last[rkey] = latest

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
        for key, (f, recipients, _) in state.attempts.items():
            copy = Figures()
            copy.add(f)
            copy.recipients = len(recipients)
            out[key] = copy
        # A pending recipient whose message expired at or after its last attempt counts as
        # expired, on the day of the first such expiry (a later one is a reused queue id's).
        outcomes = Counter(state.outcomes)
        expiries, days, day_of = state.expiries, self._days, self._day
        for each in expiries.values():
            each.sort()
        none: list[float] = []
        for ts, final, status, key, queue in state.last.values() if expiries else ():
            if final:
                continue
            times = expiries.get(queue, none)
            at = bisect_left(times, ts)  # the first expiry at or after the last attempt
            if at == len(times):
                continue
            expiry = times[at]
            outcomes[(key, status)] -= 1
            day = days.get(expiry // 86400) or day_of(expiry)
            outcomes[((day, key[1], key[2], key[3]), "expired")] += 1
        for (key, status), n in outcomes.items():
            if not n:
                continue
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
