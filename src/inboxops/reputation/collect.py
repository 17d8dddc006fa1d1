"""Parser events -> the delivery attempts that count, and why the others do not. Pure.

Reputation is about mail to the outside world from our own senders, so out go, each counted:

* ``notices``: delivery status notifications (``from=<>``, or a queue id named by a
  ``sender non-delivery notification: QID`` line): Postfix's own mail, not campaign mail;
* ``local``: deliveries by lmtp, local, virtual, pipe or discard (mailboxes on our side);
* ``internal_relays``: hops to a content filter or hub (``relay=127.0.0.1[...]``, a relay on an
  internal domain, or a literal loopback/private address);
* ``internal``: recipients on ``[reputation] internal_domains`` (and their subdomains);
* ``probes``: seed/probe mailboxes (local part starting with a ``probe_prefixes`` entry);
* ``no_recipient``: ``to=<>``.

Inbound smtpd/postscreen lines never become events (the parser counts them).

A queue id is unique within one Postfix instance on one host, so messages are keyed by
``scope`` = ``host/instance``. Whether a message is a notice is usually known from its qmgr line
earlier in the same file; when it was in an earlier file, the row carries ``sender_known=False``
and the store checks the notices it remembered (``rep_notices``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Final

from inboxops.operators.classify import Classifier
from inboxops.reputation.model import Attempt, Event
from inboxops.reputation.parse import (
    ATTEMPT,
    EVENT_TYPES,
    EXPIRED,
    MESSAGE_FROM,
    NOTIFICATION,
    REMOVED,
    Record,
)

EXTERNAL_SERVICES = frozenset({"smtp", "retry", "error"})
LOCAL_SERVICES = frozenset({"lmtp", "local", "virtual", "pipe", "discard"})
_CODE = re.compile(r"(?:said: |^)([245]\d\d)[ -]")
NO_OPERATOR = ""  # decided later, from the recipient domain's MX


def digest64_py(text: str) -> int:
    """A stable signed 64-bit digest (BIGINT-sized): idempotency keys that survive restarts.
    The definition; :func:`digest64` is the C module's copy of it where that was built."""
    raw = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(raw, "big", signed=True)


def _fast_digest() -> Callable[[str], int] | None:
    """The C digest (_digest.c, built by pip install), if it gives the definition's values."""
    try:
        from inboxops.reputation._digest import digest64 as fast
    except ImportError:
        return None
    probes = ("", "a", "é\ud800" * 50, "x" * 128, "y" * 129)
    return fast if all(fast(p) == digest64_py(p) for p in probes) else None


FAST_DIGEST: Final = _fast_digest()
digest64: Callable[[str], int] = FAST_DIGEST or digest64_py


def queue_digest(scope: str, queue_id: str) -> int:
    """:func:`digest64` of a message (its queue id where it is unique): how the store finds a
    message's attempts."""
    return digest64(f"{scope} {queue_id}")


def reply_code(reply: str) -> int | None:
    match = _CODE.search(reply)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Exclusions:
    """Who is not an external recipient: internal domains, probe mailboxes (pure rules)."""

    internal_domains: tuple[str, ...] = ()
    probe_prefixes: tuple[str, ...] = ()

    def internal(self, domain: str) -> bool:
        return any(domain == d or domain.endswith("." + d) for d in self.internal_domains)

    def probe(self, recipient: str) -> bool:
        return recipient.startswith(self.probe_prefixes) if self.probe_prefixes else False


@dataclass(slots=True)
class Row:
    """One delivery attempt that counts, ready for the store (staging digests ``line`` and
    the recipient into its keys, :mod:`.staging`; an in-memory run never needs them)."""

    line: str
    recipient: str
    ts: float
    scope: str
    queue_id: str
    syslog_name: str
    domain: str
    operator: str  # NO_OPERATOR until the domain's MX decides it
    segment: str
    relay_host: str | None
    dsn: str
    code: int | None
    status: str
    reason: str
    reply: str | None
    sender_known: bool


@dataclass
class Excluded:
    notices: int = 0
    local: int = 0
    internal_relays: int = 0
    internal: int = 0
    probes: int = 0
    no_recipient: int = 0

    def total(self) -> int:
        return (
            self.notices
            + self.local
            + self.internal_relays
            + self.internal
            + self.probes
            + self.no_recipient
        )


@dataclass
class Batch:
    rows: list[Row] = field(default_factory=list)
    expiries: list[tuple[str, str, float]] = field(default_factory=list)  # scope, qid, ts
    notices: list[tuple[str, str, float]] = field(default_factory=list)  # scope, qid, ts


class Collector:
    """Feeds on parser events; :meth:`take` hands over what accumulated since the last call.

    :meth:`run` reads the parser's tuples (:meth:`PostfixLogParser.records
    <inboxops.reputation.parse.PostfixLogParser.records>`): the ingest's hot loop. :meth:`feed`
    takes one event object and goes through the same loop.
    """

    def __init__(self, exclusions: Exclusions, classifier: Classifier) -> None:
        self.exclusions = exclusions
        self.classifier = classifier
        self._probes = exclusions.probe_prefixes
        self.excluded = Excluded()
        self.kept = 0
        self._batch = Batch()
        # (scope, qid) -> sent by the null sender; only messages seen in this run and not
        # removed since
        self._null: dict[tuple[str, str], bool] = {}
        self._relays: dict[str, tuple[str, str] | None] = {}  # None: internal relay
        self._domains: dict[str, bool] = {}  # domain -> internal
        self._scopes: dict[tuple[str, str], str] = {}  # (host, syslog name) -> scope

    def take(self) -> Batch:
        batch, self._batch = self._batch, Batch()
        return batch

    @property
    def pending(self) -> int:
        return len(self._batch.rows)

    @property
    def pending_rows(self) -> list[Row]:
        """The rows collected since the last :meth:`take` (to check a batch's size cheaply)."""
        return self._batch.rows

    def feed(self, event: Event) -> None:
        for _ in self.run((_record(event),)):
            pass

    def attempt(self, a: Attempt) -> None:
        self.feed(a)

    def queue_event(self, event: Event) -> None:
        """Everything but an attempt: who sent a message, notices, expiries, removals."""
        self.feed(event)

    def run(self, records: Iterable[Record], batch: int = 0) -> Iterator[Batch]:
        """Consume parser records; each time ``batch`` rows are pending (never when 0), hand
        them over as a :class:`Batch` (what :meth:`take` would return). The rest stays pending.

        Attempts that count become :class:`Row` s; the others are counted in :attr:`excluded`.
        Queue events say which messages are notices (``from=<>``, a notification line), which
        expired, and which left the queue (so a reused queue id starts afresh).
        """
        ex = self.excluded
        null, scopes = self._null, self._scopes
        domains, relays, probes = self._domains, self._relays, self._probes
        internal_domain = self.exclusions.internal
        pending = self._batch
        rows, notices = pending.rows, pending.notices
        kept = 0
        try:
            for rec in records:
                tag = rec[0]
                if tag != ATTEMPT:
                    key = (rec[2], rec[3])
                    scope = scopes.get(key)
                    if scope is None:
                        scope = scopes[key] = _scope(*key)
                    if tag == MESSAGE_FROM:
                        if rec[5]:
                            null[(scope, rec[4])] = False
                        else:
                            null[(scope, rec[4])] = True
                            notices.append((scope, rec[4], rec[1]))
                    elif tag == REMOVED:
                        null.pop((scope, rec[4]), None)
                    elif tag == NOTIFICATION:
                        null[(scope, rec[5])] = True
                        notices.append((scope, rec[5], rec[1]))
                    elif tag == EXPIRED:
                        pending.expiries.append((scope, rec[4], rec[1]))
                    continue
                (
                    _,
                    ts,
                    host,
                    name,
                    service,
                    qid,
                    recipient,
                    domain,
                    _,
                    relay,
                    _,
                    _,
                    dsn,
                    status,
                    reply,
                    reason,
                    line,
                ) = rec
                if service not in EXTERNAL_SERVICES:
                    ex.local += 1
                    continue
                if not recipient:
                    ex.no_recipient += 1
                    continue
                key = (host, name)
                scope = scopes.get(key)
                if scope is None:
                    scope = scopes[key] = _scope(host, name)
                null_sender = null.get((scope, qid))
                if null_sender:
                    ex.notices += 1
                    continue
                internal = domains.get(domain)
                if internal is None:
                    internal = domains[domain] = internal_domain(domain)
                if internal:
                    ex.internal += 1
                    continue
                if probes and recipient.startswith(probes):
                    ex.probes += 1
                    continue
                operator, segment = NO_OPERATOR, ""
                if relay is not None:
                    try:
                        decided = relays[relay]
                    except KeyError:
                        decided = relays[relay] = self._decide_relay(relay)
                    if decided is None:
                        ex.internal_relays += 1
                        continue
                    operator, segment = decided
                accepted = status == "sent"
                rows.append(
                    Row(
                        line,
                        recipient,
                        ts,
                        scope,
                        qid,
                        name,
                        domain,
                        operator,
                        segment,
                        relay,
                        dsn,
                        None if accepted else reply_code(reply),
                        status,
                        reason,
                        None if accepted else reply,
                        null_sender is not None,
                    )
                )
                kept += 1
                if batch and len(rows) >= batch:
                    yield self.take()
                    pending = self._batch
                    rows, notices = pending.rows, pending.notices
        finally:
            self.kept += kept

    def _decide_relay(self, relay: str) -> tuple[str, str] | None:
        """(operator, segment) of a relay host (memoised by the caller); None when the relay is
        internal; NO_OPERATOR when only the recipient domain's MX can tell."""
        if self._is_internal_relay(relay):
            return None
        match = self.classifier.relay(relay)
        if match is None:
            return NO_OPERATOR, ""
        return match.operator, match.segment or ""

    def _is_internal_relay(self, relay: str) -> bool:
        name = relay.strip("[]").lower()
        if name in ("localhost", "localhost.localdomain") or name in ("local", "virtual"):
            return True
        if "/" in name:  # a unix socket or transport name
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return self.exclusions.internal(name.rstrip("."))
        return address.is_loopback or address.is_private or address.is_link_local


def _scope(host: str, syslog_name: str) -> str:
    """Where a queue id is unique: one Postfix instance (``postfix-out07``) on one host."""
    return f"{host}/{syslog_name.split('/', 1)[0]}"


_FIELDS: Final = {
    cls: (tag, attrgetter(*(f.name for f in fields(cls))))  # type: ignore[arg-type]
    for tag, cls in enumerate(EVENT_TYPES)
}


def _record(event: Event) -> Record:
    """An event object as the tuple :meth:`PostfixLogParser.records` yields for it."""
    tag, values = _FIELDS[type(event)]
    return (tag, *values(event))


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
