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
from dataclasses import dataclass, field
from datetime import UTC, datetime

from inboxops.operators.classify import Classifier
from inboxops.reputation.model import (
    Attempt,
    Event,
    Expired,
    MessageFrom,
    Notification,
    Removed,
)

EXTERNAL_SERVICES = frozenset({"smtp", "retry", "error"})
LOCAL_SERVICES = frozenset({"lmtp", "local", "virtual", "pipe", "discard"})
_CODE = re.compile(r"(?:said: |^)([245]\d\d)[ -]")
NO_OPERATOR = ""  # decided later, from the recipient domain's MX


def digest64(text: str) -> int:
    """A stable signed 64-bit digest (BIGINT-sized): idempotency keys that survive restarts."""
    raw = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(raw, "big", signed=True)


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
    """One delivery attempt that counts, ready for the store (which digests ``line`` and the
    recipient into its keys; an in-memory run never needs them)."""

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
    fp: int = 0  # the line's digest, when a worker process computed it (and blanked ``line``)

    def line_digest(self) -> int:
        return self.fp or digest64(self.line)


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
    """Feeds on parser events; :meth:`take` hands over what accumulated since the last call."""

    def __init__(self, exclusions: Exclusions, classifier: Classifier) -> None:
        self.exclusions = exclusions
        self.classifier = classifier
        self._probes = exclusions.probe_prefixes
        self.excluded = Excluded()
        self.kept = 0
        self._batch = Batch()
        self._null: dict[str, bool] = {}  # "scope qid" -> sent by the null sender, this run
        self._relays: dict[str, tuple[str, str] | None] = {}  # None: internal relay
        self._domains: dict[str, bool] = {}  # domain -> internal
        self._scopes: dict[tuple[str, str], str] = {}

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

    def _scope(self, host: str, syslog_name: str) -> str:
        key = (host, syslog_name)
        scope = self._scopes.get(key)
        if scope is None:
            scope = f"{host}/{syslog_name.split('/', 1)[0]}"
            self._scopes[key] = scope
        return scope

    def feed(self, event: Event) -> None:
        kind = type(event)
        if kind is Attempt:
            self.attempt(event)  # type: ignore[arg-type]
        else:
            self.queue_event(event)

    def queue_event(self, event: Event) -> None:
        """Everything but an attempt: who sent a message, notices, expiries, removals."""
        kind = type(event)
        if kind is MessageFrom:
            assert isinstance(event, MessageFrom)
            scope = self._scope(event.host, event.syslog_name)
            if event.sender == "":
                self._null[f"{scope} {event.queue_id}"] = True
                self._batch.notices.append((scope, event.queue_id, event.ts))
            else:
                self._null[f"{scope} {event.queue_id}"] = False
        elif kind is Notification:
            assert isinstance(event, Notification)
            scope = self._scope(event.host, event.syslog_name)
            self._null[f"{scope} {event.notice_queue_id}"] = True
            self._batch.notices.append((scope, event.notice_queue_id, event.ts))
        elif kind is Expired:
            assert isinstance(event, Expired)
            scope = self._scope(event.host, event.syslog_name)
            self._batch.expiries.append((scope, event.queue_id, event.ts))
        elif kind is Removed:
            assert isinstance(event, Removed)
            self._null.pop(f"{self._scope(event.host, event.syslog_name)} {event.queue_id}", None)

    def attempt(self, a: Attempt) -> None:
        ex = self.excluded
        if a.service not in EXTERNAL_SERVICES:
            ex.local += 1
            return
        if not a.recipient:
            ex.no_recipient += 1
            return
        scope = self._scope(a.host, a.syslog_name)
        null = self._null.get(f"{scope} {a.queue_id}")
        if null:
            ex.notices += 1
            return
        domain = a.domain
        internal = self._domains.get(domain)
        if internal is None:
            internal = self._domains[domain] = self.exclusions.internal(domain)
        if internal:
            ex.internal += 1
            return
        if self._probes and a.recipient.startswith(self._probes):
            ex.probes += 1
            return
        relay = a.relay_host
        operator, segment = NO_OPERATOR, ""
        if relay is not None:
            try:
                decided = self._relays[relay]
            except KeyError:
                decided = self._relays[relay] = self._decide_relay(relay)
            if decided is None:
                ex.internal_relays += 1
                return
            operator, segment = decided
        status = a.status
        accepted = status == "sent"
        self._batch.rows.append(
            Row(
                a.line,
                a.recipient,
                a.ts,
                scope,
                a.queue_id,
                a.syslog_name,
                domain,
                operator,
                segment,
                relay,
                a.dsn,
                None if accepted else reply_code(a.reply),
                status,
                a.reason,
                None if accepted else a.reply,
                null is not None,
            )
        )
        self.kept += 1

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


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
