"""Delivery attempts into the database: idempotent, order-independent, in short transactions.

Each batch of attempts from :mod:`~inboxops.reputation.collect` is written in one transaction:

1. the rows arrive as tuples or, from the readers of a big log into SQLite, as database images
   (:mod:`.image`) attached for the transaction;
2. ``INSERT ... ON CONFLICT (fp) DO NOTHING`` keeps each log line once, so the same log twice,
   or yesterday's rotated file beside today's, never double-counts (SQLite ``executemany`` or
   ``INSERT ... SELECT`` from an image; PostgreSQL ``COPY`` into a staging table, then
   ``INSERT ... SELECT``); rows are appended in arrival order (``id``);
3. a sent or bounced attempt counts its recipient's final outcome itself; only recipients that
   were ever deferred are followed in ``rep_recipients`` (a few per cent of them): each row is
   recomputed from the recipient's latest stored attempt, whichever file brought it;
4. an expiry (``status=expired``) turns the still-pending recipients of its message into
   "expired", whether it arrives before or after their attempts (``rep_expiries`` remembers it);
5. the days whose figures changed are marked dirty in the same transaction.

:meth:`ReputationStore.rebuild` then recomputes the daily rollup (``rep_daily``) of the dirty
days and clears them in one transaction; a run killed in between leaves them dirty, and the next
run rebuilds them. Writers serialise on SQLite's write lock (BEGIN IMMEDIATE) or a PostgreSQL
advisory lock, so two ingests at once cannot lose a rebuild.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from inboxops.operators.domains import DomainClassifier
from inboxops.reputation.collect import NO_OPERATOR, Batch, queue_digest
from inboxops.reputation.image import KINDS, ROWS
from inboxops.reputation.image import TABLE as STAGE_VIEW
from inboxops.reputation.metrics import COUNTER_NAMES
from inboxops.reputation.staging import (
    ATTEMPT_WIDTH,
    SENDER_KNOWN,
    STAGE_COLS,
    TS,
    Staged,
    StagedBatch,
    StagedImage,
    Stager,
)
from inboxops.storage.db import database_errors, retrying, write_transaction
from inboxops.storage.raw import Raw

log = logging.getLogger(__name__)

REPUTATION_LOCK = 0x1B0C6  # PostgreSQL advisory lock: "inboxops reputation writes"
_CHUNK = 500

_ATTEMPT_COLS = (
    "fp, rkey, ts, day, syslog_name, domain, operator, segment, relay_host, dsn, code, status, "
    "reason, reply, qkey"
)

_STAGE_DDL = (
    "CREATE TEMP TABLE rep_stage (fp BIGINT, rkey BIGINT, ts {ts}, day DATE, syslog_name TEXT, "
    "domain TEXT, operator TEXT, segment TEXT, relay_host TEXT, dsn TEXT, code SMALLINT, "
    "status TEXT, reason TEXT, reply TEXT, qkey BIGINT, scope TEXT, queue_id TEXT, seq BIGINT)"
)
# Messages this batch learnt are notices (from=<> or named by a bounce line), within a time span
# around the notice (short queue ids are reused): attempts already stored for them are retracted,
# so notices apply whatever order the logs arrive in.
NOTICE_SPAN = timedelta(days=7)
_NOTICE_DDL = (
    "CREATE TEMP TABLE rep_noticeq (qkey BIGINT, scope TEXT, queue_id TEXT, lo {ts}, hi {ts})"
)
_NOTICE_ADD = "INSERT INTO rep_noticeq (qkey, scope, queue_id, lo, hi) VALUES (?, ?, ?, ?, ?)"
# What they retract is found once (a batch brings thousands of notices, most with nothing
# stored), then its days are marked and its rows deleted.
_NOTICED_DDL = "CREATE TEMP TABLE rep_noticed (id BIGINT, rkey BIGINT, day {day})"
_NOTICED_FIND = [
    "INSERT INTO rep_noticed (id, day) SELECT a.id, a.day "
    "FROM rep_attempts a JOIN rep_noticeq q ON a.qkey = q.qkey "
    "WHERE a.ts >= q.lo AND a.ts <= q.hi",
    "INSERT INTO rep_noticed (rkey, day) SELECT r.rkey, r.final_day "
    "FROM rep_recipients r JOIN rep_noticeq q ON r.scope = q.scope AND r.queue_id = q.queue_id "
    "WHERE r.last_ts >= q.lo AND r.last_ts <= q.hi",
]
_RETRACT = [
    "INSERT INTO rep_dirty_days (day) SELECT DISTINCT day FROM rep_noticed WHERE true "
    "ON CONFLICT (day) DO NOTHING",
    "DELETE FROM rep_recipients WHERE rkey IN (SELECT rkey FROM rep_noticed)",
]
_RETRACT_ATTEMPTS = "DELETE FROM rep_attempts WHERE id IN (SELECT id FROM rep_noticed)"

_ATTEMPTS_SQL = (
    f"INSERT INTO rep_attempts ({_ATTEMPT_COLS}) SELECT {_ATTEMPT_COLS} FROM rep_stage "
    "WHERE true ON CONFLICT (fp) DO NOTHING"
)
_ATTEMPTS_DIRECT = (
    f"INSERT INTO rep_attempts ({_ATTEMPT_COLS}) VALUES ({', '.join('?' * ATTEMPT_WIDTH)}) "
    "ON CONFLICT (fp) DO NOTHING"
)
_DIRTY_DAY = "INSERT INTO rep_dirty_days (day) VALUES (?) ON CONFLICT (day) DO NOTHING"

# Which of this batch's recipients have a row already (a deferral of theirs was stored).
_KEYS_DDL = "CREATE TEMP TABLE rep_keys (rkey BIGINT)"
_KNOWN = (
    "SELECT r.rkey, r.final_day FROM rep_recipients r WHERE r.rkey IN (SELECT rkey FROM rep_keys)"
)
# Every stored attempt of the recipients to follow (their own rows are few: the deferred).
_FOLLOW_DDL = "CREATE TEMP TABLE rep_follow (qkey BIGINT, rkey BIGINT)"
_FOLLOWED = (
    "SELECT a.rkey, a.ts, a.status, a.day, a.syslog_name, a.domain, a.operator, a.segment "
    "FROM rep_follow f JOIN rep_attempts a ON a.qkey = f.qkey AND a.rkey = f.rkey"
)
# A followed recipient's row is its latest stored attempt, recomputed from all of them (then
# its message's expiry, if any, applies again): the same whatever order the files came in, even
# an expiry read before the retries that preceded it.
_RECIPIENTS_SQL = """
INSERT INTO rep_recipients
    (rkey, scope, queue_id, domain, syslog_name, operator, segment, status, last_ts, final_day)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (rkey) DO UPDATE SET
    scope = excluded.scope, queue_id = excluded.queue_id, domain = excluded.domain,
    syslog_name = excluded.syslog_name, operator = excluded.operator,
    segment = excluded.segment, status = excluded.status, last_ts = excluded.last_ts,
    final_day = excluded.final_day
"""
# The queues whose expiry may now apply: those of the recipients followed, and those of this
# batch's expiries (few, either way).
_EXPQ_DDL = "CREATE TEMP TABLE rep_expq (scope TEXT, queue_id TEXT)"
_EXPQ_ADD = "INSERT INTO rep_expq (scope, queue_id) VALUES (?, ?)"
# Recipients still pending whose message expired at or after their last attempt.
_EXPIRABLE = """
FROM rep_recipients r JOIN rep_expiries e ON e.scope = r.scope AND e.queue_id = r.queue_id
WHERE r.status = 'deferred' AND e.ts >= r.last_ts
  AND (r.scope, r.queue_id) IN (SELECT scope, queue_id FROM rep_expq)
"""
_DIRTY_FROM_EXPIRY = [
    f"INSERT INTO rep_dirty_days (day) SELECT DISTINCT r.final_day {_EXPIRABLE} "
    "ON CONFLICT (day) DO NOTHING",
    f"INSERT INTO rep_dirty_days (day) SELECT DISTINCT e.day {_EXPIRABLE} "
    "ON CONFLICT (day) DO NOTHING",
]
# The expiry that applies is the first at or after the last attempt: a queue id Postfix reused
# can carry a later message's expiry too (an UPDATE ... FROM would take either).
_FIRST_EXPIRY = """(SELECT e.{column} FROM rep_expiries e
    WHERE e.scope = rep_recipients.scope AND e.queue_id = rep_recipients.queue_id
      AND e.ts >= rep_recipients.last_ts
    ORDER BY e.ts LIMIT 1)"""
_EXPIRE_SQL = f"""
UPDATE rep_recipients SET status = 'expired',
    last_ts = {_FIRST_EXPIRY.format(column="ts")}, final_day = {_FIRST_EXPIRY.format(column="day")}
WHERE status = 'deferred' AND (scope, queue_id) IN (SELECT scope, queue_id FROM rep_expq)
  AND EXISTS {_FIRST_EXPIRY.format(column="ts")}
"""
# A reader's database image (:mod:`.image`), attached as ``{image}`` for the transaction: what
# the Python rows go through in Python, it goes through in SQL.
_IMAGE_DROP = f"DELETE FROM {{image}}.{ROWS} WHERE fp = ? AND seq = ?"
_IMAGE_DECIDE = (
    f"UPDATE {{image}}.{KINDS} SET operator = ?, segment = ? WHERE domain = ? AND operator = ?"
)
_IMAGE_CLOSED = f"DELETE FROM {{image}}.{ROWS} WHERE day < ?"
_IMAGE_ATTEMPTS = (  # the image's rows are keyed by (fp, seq): in key order, no sort
    f"INSERT INTO rep_attempts ({_ATTEMPT_COLS}) SELECT {_ATTEMPT_COLS} "
    f"FROM {{image}}.{STAGE_VIEW} "
    "WHERE true ORDER BY fp ON CONFLICT (fp) DO NOTHING"
)
_IMAGE_DIRTY = (
    f"INSERT INTO rep_dirty_days (day) SELECT DISTINCT day FROM {{image}}.{ROWS} WHERE true "
    "ON CONFLICT (day) DO NOTHING"
)
# The rows _follow needs from an image: every row of a recipient deferred anywhere in this
# batch (rep_deferred) or followed already; the rest are delivered or bounced at once.
_DEFERRED_DDL = "CREATE TEMP TABLE rep_deferred (rkey BIGINT PRIMARY KEY)"
_DEFERRED_ADD = "INSERT OR IGNORE INTO rep_deferred (rkey) VALUES (?)"
_IMAGE_DEFERRED = (
    f"INSERT OR IGNORE INTO rep_deferred (rkey) SELECT rkey FROM {{image}}.{STAGE_VIEW} "
    "WHERE status = 'deferred'"
)
_IMAGE_CANDIDATES = (
    f"SELECT {', '.join(STAGE_COLS)} FROM {{image}}.{STAGE_VIEW} s "
    "WHERE s.rkey IN (SELECT rkey FROM rep_deferred) "
    "OR EXISTS (SELECT 1 FROM rep_recipients r WHERE r.rkey = s.rkey)"
)
_TEMP_TABLES = (
    "rep_stage",
    "rep_keys",
    "rep_follow",
    "rep_expq",
    "rep_noticeq",
    "rep_noticed",
    "rep_deferred",
)

COUNTERS = list(COUNTER_NAMES)  # rep_daily's counter columns, in Figures' order


def _n(condition: str) -> str:
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


_ATTEMPT_FIGURES = {
    "attempts": "COUNT(*)",
    "recipients": "COUNT(DISTINCT rkey)",
    # a sent or bounced attempt is its recipient's final one: counted where it happened
    "delivered": _n("status = 'sent'"),
    "bounced": _n("status = 'bounced'"),
    "deferrals": _n("status = 'deferred'"),
    "throttled": _n("reason = 'throttled'"),
    "policy_blocked": _n("reason = 'policy_block'"),
    "policy_blocked_550_571": _n("reason = 'policy_block' AND code = 550 AND dsn = '5.7.1'"),
    "auth_failures": _n("reason = 'auth_failure'"),
    "user_unknown": _n("reason = 'user_unknown'"),
    "mailbox_full": _n("reason = 'mailbox_full'"),
    "greeting_blocks": _n("reason = 'greeting_block'"),
    "connection_failures": _n("reason = 'connection'"),
    "dns_failures": _n("reason = 'dns'"),
}
# the recipients still waiting at their last attempt, and those whose message then expired
_OUTCOME_FIGURES = {
    "expired": _n("status = 'expired'"),
    "pending": _n("status = 'deferred'"),
}
_KEYS = "syslog_name, operator, segment"
_REBUILD_SQL = (
    f"INSERT INTO rep_daily (day, {_KEYS}, {', '.join(COUNTERS)}) "
    f"SELECT day, {_KEYS}, {', '.join(f'SUM({c})' for c in COUNTERS)} FROM ("
    f"SELECT day, {_KEYS}, "
    + ", ".join(_ATTEMPT_FIGURES.get(c, "0") + f" AS {c}" for c in COUNTERS)
    + f" FROM rep_attempts WHERE day IN (SELECT day FROM rep_dirty_days) GROUP BY day, {_KEYS}"
    f" UNION ALL SELECT final_day AS day, {_KEYS}, "
    + ", ".join(_OUTCOME_FIGURES.get(c, "0") + f" AS {c}" for c in COUNTERS)
    + " FROM rep_recipients WHERE final_day IN (SELECT day FROM rep_dirty_days)"
    " AND status IN ('deferred', 'expired')"
    f" GROUP BY final_day, {_KEYS}) figures GROUP BY day, {_KEYS}"
)


@dataclass
class WriteResult:
    new: int = 0  # attempts stored for the first time
    known: int = 0  # attempts already stored (an overlapping or repeated log)
    notices: int = 0  # attempts of notices recognised from earlier files
    past_retention: int = 0  # attempts of days `reputation prune` closed: skipped


def locked(conn: Connection) -> Raw:
    """The transaction's :class:`Raw`, holding the reputation writers' lock: SQLite's write
    lock is already held (BEGIN IMMEDIATE); PostgreSQL takes an advisory transaction lock, so
    ingests, rollups and prunes never interleave."""
    raw = Raw(conn)
    if raw.pg:
        raw.run("SELECT pg_advisory_xact_lock(?)", (REPUTATION_LOCK,))
    return raw


def stored_horizon(raw: Raw) -> date | None:
    """The first day not closed by `reputation prune`, or None when nothing was pruned."""
    value = raw.one("SELECT first_day FROM rep_horizon WHERE id = 1", ())
    return None if value is None else as_date(value)


def horizon_day(raw: Raw) -> Any:
    """:func:`stored_horizon` in the form the ``day`` columns hold (text on SQLite)."""
    first = stored_horizon(raw)
    return None if first is None else raw.day(first)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class ReputationStore:
    """Writes collector batches; operators of ``relay=none`` attempts come from ``domains``."""

    def __init__(self, engine: Engine, domains: DomainClassifier, *, offline: bool) -> None:
        self.engine = engine
        self.domains = domains
        self.offline = offline
        self._stager = Stager(pg=engine.dialect.name == "postgresql")

    # -- writing ------------------------------------------------------------------------------

    def write(self, batch: Batch) -> WriteResult:
        """Stage a collector batch here, then :meth:`write_staged`."""
        staged = StagedBatch(self._stager.stage(batch.rows), batch.expiries, batch.notices)
        return self.write_staged(staged)

    def write_staged(self, batch: StagedBatch) -> WriteResult:
        """Write one batch of staged rows (:mod:`.staging`), tuples and images, in one
        transaction."""
        result = WriteResult()
        notices = self._known_notices(batch)
        stage = [r for r in batch.rows if r[SENDER_KNOWN] or not _is_notice(notices, r)]
        plans = [_ImagePlan(i, notices) for i in batch.images]
        result.notices = len(batch.rows) - len(stage) + sum(len(p.drop) for p in plans)
        stage = self._decide_operators(stage, plans)
        if not stage and not plans and not batch.expiries and not batch.notices:
            return result
        images = {f"rep_image{i}": p.image.data for i, p in enumerate(plans)}

        def attempt() -> tuple[int, int, int]:
            with write_transaction(self.engine, images) as conn:
                raw = locked(conn)
                first = horizon_day(raw)  # read under the lock: a prune may just have run
                kept, expiries = stage, batch.expiries
                if first is not None:  # closed days are never reopened (reputation/prune.py)
                    kept = [r for r in stage if r[3] >= first]
                    expiries = [e for e in expiries if raw.day(_utc(e[2]).date()) >= first]
                past = len(stage) - len(kept)
                self._remember(raw, batch.notices, expiries)
                ts_type = "TIMESTAMPTZ" if raw.pg else "TEXT"
                try:
                    retracted = self._retract_notices(raw, batch.notices, ts_type)
                    if raw.pg:  # COPY cannot skip duplicates: stage, then insert what is new
                        raw.run(_STAGE_DDL.format(ts=ts_type), ())
                        width = len(STAGE_COLS)
                        raw.write_named("rep_stage", STAGE_COLS, [r[:width] for r in kept])
                        new = raw.rowcount(_ATTEMPTS_SQL, ())
                    else:  # in key order: the B-tree is filled page by page, not at random
                        ordered = sorted((r[:ATTEMPT_WIDTH] for r in kept), key=_first)
                        new = raw.executemany_count(_ATTEMPTS_DIRECT, ordered)
                    raw.executemany(_DIRTY_DAY, [(d,) for d in sorted({r[3] for r in kept})])
                    for name, plan in zip(images, plans, strict=True):
                        past += plan.apply(raw, name, first)
                        new += raw.rowcount(_IMAGE_ATTEMPTS.format(image=name), ())
                        raw.run(_IMAGE_DIRTY.format(image=name), ())
                    candidates = _image_candidates(raw, list(images), kept)
                    queues = self._follow(raw, _latest(kept + candidates))
                    self._expire(raw, queues | {(s, q) for s, q, _ in expiries})
                finally:
                    for table in _TEMP_TABLES:
                        raw.run(f"DROP TABLE IF EXISTS {table}", ())
                return new, retracted, past

        with database_errors(self.engine, "write"):
            result.new, retracted, result.past_retention = retrying(
                attempt, what="reputation batch"
            )
        staged = len(stage) + sum(p.image.rows - len(p.drop) for p in plans)
        result.known = staged - result.new - result.past_retention
        result.notices += retracted
        return result

    def _follow(self, raw: Raw, latest: list[tuple[Any, ...]]) -> set[tuple[str, str]]:
        """Keep ``rep_recipients`` for the recipients that were ever deferred: those with a
        deferral as their latest attempt in this batch, and those with a row already. Each
        row becomes its latest stored attempt (whichever file brought it); :meth:`_expire`
        then applies its message's expiry again. Delivered and bounced recipients need no row:
        their final attempt counts them. Returns the queues of the recipients followed."""
        raw.run(_KEYS_DDL, ())
        raw.write_named("rep_keys", ["rkey"], [(r[1],) for r in latest])
        known = dict(raw.all(_KNOWN, ()))
        follow = [r for r in latest if r[11] == "deferred" or r[1] in known]
        if not follow:
            return set()
        raw.run(_FOLLOW_DDL, ())
        raw.write_named("rep_follow", ["qkey", "rkey"], [(r[14], r[1]) for r in follow])
        # _FOLLOWED's columns: rkey, ts, status, day, syslog_name, domain, operator, segment.
        # This batch's latest attempt stands (it won the batch's ties by log order) unless a
        # stored one ranks above it: a later attempt another file brought.
        best = {r[1]: (r[1], r[2], r[11], r[3], r[4], r[5], r[6], r[7]) for r in follow}
        for stored in raw.all(_FOLLOWED, ()):
            if _stored_rank(stored) > _stored_rank(best[stored[0]]):
                best[stored[0]] = stored
        recipients = []
        days = set(known.values())  # where they counted before
        for r in follow:
            _, ts, status, day, syslog_name, domain, operator, segment = best[r[1]]
            days.add(day)
            recipients.append(
                (r[1], r[15], r[16], domain, syslog_name, operator, segment, status, ts, day)
            )
        raw.executemany(_DIRTY_DAY, [(d,) for d in sorted(days)])
        raw.executemany(_RECIPIENTS_SQL, sorted(recipients))
        return {(r[15], r[16]) for r in follow}

    def _expire(self, raw: Raw, queues: set[tuple[str, str]]) -> None:
        """Pending recipients of these queues whose message expired after their last attempt
        become expired, on the expiry's day."""
        if not queues:
            return
        raw.run(_EXPQ_DDL, ())
        raw.executemany(_EXPQ_ADD, sorted(queues))
        for sql in _DIRTY_FROM_EXPIRY:
            raw.run(sql, ())
        raw.run(_EXPIRE_SQL, ())

    def _remember(
        self,
        raw: Raw,
        notices: list[tuple[str, str, float]],
        expiries: list[tuple[str, str, float]],
    ) -> None:
        """Notices and expiries outlive this run: a later file may hold their attempts."""
        stamp = self._stager.stamp
        if notices:
            latest: dict[tuple[str, str], float] = {}
            for scope, qid, ts in notices:
                latest[(scope, qid)] = max(ts, latest.get((scope, qid), ts))
            raw.executemany(
                "INSERT INTO rep_notices (scope, queue_id, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (scope, queue_id) DO NOTHING",
                [(s, q, stamp(ts)[0]) for (s, q), ts in sorted(latest.items())],
            )
        if expiries:
            rows = sorted({(s, q, ts) for s, q, ts in expiries})
            raw.executemany(
                "INSERT INTO rep_expiries (scope, queue_id, ts, day) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (scope, queue_id, ts) DO NOTHING",
                [(s, q, *stamp(ts)) for s, q, ts in rows],
            )
            raw.executemany(
                "INSERT INTO rep_dirty_days (day) VALUES (?) ON CONFLICT (day) DO NOTHING",
                sorted({(stamp(ts)[1],) for _, _, ts in rows}),
            )

    def _retract_notices(
        self, raw: Raw, notices: list[tuple[str, str, float]], ts_type: str
    ) -> int:
        """Attempts already stored for messages this batch shows to be notices: gone."""
        if not notices:
            return 0
        raw.run(_NOTICE_DDL.format(ts=ts_type), ())
        stamp, span = self._stager.stamp, NOTICE_SPAN.total_seconds()
        rows = sorted(
            (queue_digest(scope, qid), scope, qid, stamp(ts - span)[0], stamp(ts + span)[0])
            for scope, qid, ts in set(notices)
        )
        raw.executemany(_NOTICE_ADD, rows)
        raw.run(_NOTICED_DDL.format(day="DATE" if raw.pg else "TEXT"), ())
        for sql in _NOTICED_FIND:
            raw.run(sql, ())
        if raw.one("SELECT COUNT(*) FROM rep_noticed", ()) == 0:
            return 0
        for sql in _RETRACT:
            raw.run(sql, ())
        return raw.rowcount(_RETRACT_ATTEMPTS, ())

    def _known_notices(self, batch: StagedBatch) -> dict[tuple[str, str], list[datetime]]:
        """When the messages of the batch's rows whose sender was not seen in this run were
        notices, by (scope, queue id): seen before (``rep_notices``) or in this very batch (a
        batch of a parallel read joins ranges: a notice's ``from=<>`` line may lie in one, its
        attempts in another)."""
        unknown = {(r[15], r[16]) for r in batch.rows if not r[SENDER_KNOWN]}
        for image in batch.images:
            unknown.update((scope, qid) for _, _, scope, qid, _ in image.unknown)
        notices: dict[tuple[str, str], list[datetime]] = {}
        if not unknown:
            return notices
        for scope, qid, ts in batch.notices:
            if (scope, qid) in unknown:
                notices.setdefault((scope, qid), []).append(_utc(ts))
        pairs = sorted(unknown)
        with database_errors(self.engine, "read"), self.engine.connect() as conn:
            raw = Raw(conn)
            for i in range(0, len(pairs), _CHUNK):
                chunk = pairs[i : i + _CHUNK]
                marks = ", ".join("(?, ?)" for _ in chunk)
                params = [v for pair in chunk for v in pair]
                for scope, qid, seen in raw.all(
                    "SELECT scope, queue_id, seen_at FROM rep_notices "
                    f"WHERE (scope, queue_id) IN ({marks})",
                    params,
                ):
                    notices.setdefault((scope, qid), []).append(_aware(seen))
        return notices

    def _decide_operators(self, rows: list[Staged], plans: list[_ImagePlan]) -> list[Staged]:
        """Attempts without a relay host name: the recipient domain's MX decides (looked up
        here, before the write transaction takes the lock)."""
        undecided = {r[5] for r in rows if r[6] == NO_OPERATOR}
        for plan in plans:
            undecided.update(plan.image.undecided)
        if not undecided:
            return rows
        decided = self.domains.classify(undecided, offline=self.offline)
        for plan in plans:
            plan.decide = [
                (decided[d].operator, decided[d].segment, d, NO_OPERATOR)
                for d in plan.image.undecided
            ]
        out = []
        for r in rows:
            if r[6] == NO_OPERATOR:
                d = decided[r[5]]
                r = (*r[:6], d.operator, d.segment, *r[8:])
            out.append(r)
        return out

    # -- the daily rollup ---------------------------------------------------------------------

    def rebuild(self) -> list[date]:
        """Recompute ``rep_daily`` for every dirty day; returns the days rebuilt."""

        def attempt() -> list[date]:
            with write_transaction(self.engine) as conn:
                raw = locked(conn)
                days = [as_date(d) for (d,) in raw.all("SELECT day FROM rep_dirty_days", ())]
                if not days:
                    return []
                raw.run("DELETE FROM rep_daily WHERE day IN (SELECT day FROM rep_dirty_days)", ())
                raw.run(_REBUILD_SQL, ())
                raw.run("DELETE FROM rep_dirty_days", ())
                return sorted(days)

        with database_errors(self.engine, "write"):
            days: list[date] = retrying(attempt, what="reputation rollup")
        log.info("event=rep_rollup days=%d", len(days))
        return days


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


def _is_notice(notices: dict[tuple[str, str], list[datetime]], row: Staged) -> bool:
    return _near_notice(notices, row[15], row[16], row[TS])


def _near_notice(
    notices: dict[tuple[str, str], list[datetime]], scope: str, qid: str, ts: float
) -> bool:
    """A notice's message: the same queue id, near in time (short queue ids are reused)."""
    seen = notices.get((scope, qid), ())
    return any(abs(_utc(ts) - when) <= NOTICE_SPAN for when in seen)


class _ImagePlan:
    """What the store does to a reader's image (:mod:`.image`) before its rows are stored:
    decided outside the write transaction, applied inside it."""

    def __init__(self, image: StagedImage, notices: dict[tuple[str, str], list[datetime]]) -> None:
        self.image = image
        self.drop = [  # the rows of notices
            (fp, seq)
            for fp, seq, scope, qid, ts in image.unknown
            if _near_notice(notices, scope, qid, ts)
        ]
        self.decide: list[tuple[str, str, str, str]] = []  # operator, segment, domain, NO_OP

    def apply(self, raw: Raw, name: str, first: Any) -> int:
        """Drop the notices' rows, set the operators the MX decided, and drop the rows of
        days `reputation prune` closed: how many of those."""
        raw.executemany(_IMAGE_DROP.format(image=name), self.drop)
        raw.executemany(_IMAGE_DECIDE.format(image=name), self.decide)
        if first is None:
            return 0
        return raw.rowcount(_IMAGE_CLOSED.format(image=name), (first,))


def _image_candidates(raw: Raw, images: list[str], rows: list[Staged]) -> list[tuple[Any, ...]]:
    """The images' rows :meth:`ReputationStore._follow` may need (see _IMAGE_CANDIDATES), in
    the staged columns' order; the batch's other rows (``rows``) count as its own."""
    if not images:
        return []
    raw.run(_DEFERRED_DDL, ())
    raw.executemany(_DEFERRED_ADD, [(r[1],) for r in rows if r[11] == "deferred"])
    for name in images:
        raw.run(_IMAGE_DEFERRED.format(image=name), ())
    return [c for name in images for c in raw.all(_IMAGE_CANDIDATES.format(image=name), ())]


def _latest(stage: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Each recipient's latest staged attempt: by time, then a final status over a deferral
    logged in the same second, then log order (``seq``)."""
    best: dict[int, tuple[Any, ...]] = {}
    for row in stage:
        current = best.get(row[1])
        if current is None or _rank(row) >= _rank(current):
            best[row[1]] = row
    return list(best.values())


def _rank(row: tuple[Any, ...]) -> tuple[Any, int, int]:
    return row[2], 0 if row[11] == "deferred" else 1, row[17]


def _stored_rank(row: tuple[Any, ...]) -> tuple[Any, int]:
    """:func:`_rank` of a stored attempt (``_FOLLOWED``'s columns); log order is not kept."""
    return row[1], 0 if row[2] == "deferred" else 1


def _aware(value: Any) -> datetime:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(when, datetime)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


__all__ = [
    "COUNTERS",
    "ReputationStore",
    "WriteResult",
    "as_date",
    "horizon_day",
    "locked",
    "stored_horizon",
]
