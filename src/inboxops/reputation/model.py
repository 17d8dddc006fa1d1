"""Plain values the Postfix log parser emits; the aggregation and storage stages consume them.

One class per line type that matters for reputation. They are mutable ``slots`` dataclasses
built positionally, because a frozen dataclass's ``__init__`` costs several times more; the
ingest's hot loop skips them altogether and reads the same fields as tuples
(:meth:`~inboxops.reputation.parse.PostfixLogParser.records`). Nothing downstream should mutate
them.

Every event carries ``host`` and ``syslog_name``: a queue id is unique only inside one Postfix
instance, and a fleet's syslog file interleaves many instances and hosts, so the key that joins a
``MessageFrom`` to its ``Attempt`` lines is ``(host, instance, queue_id)``. ``ts`` is epoch
seconds (a float; whole seconds for the year-less syslog formats).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(slots=True)
class Attempt:
    """One delivery attempt for one recipient: a ``to=<...>, relay=..., status=...`` line.

    ``service`` is the last component of the syslog name (smtp, lmtp, local, virtual, pipe,
    error, retry, discard, or qmgr when it defers a suspended destination itself); the caller
    decides which services count as external delivery. ``reason`` is a class from
    :mod:`inboxops.reputation.reasons`. ``line`` is the raw line without its newline, for an
    idempotency hash.
    """

    ts: float
    host: str
    syslog_name: str  # e.g. "postfix-out07/msft/smtp"
    service: str  # e.g. "smtp"
    queue_id: str
    recipient: str  # lower-cased; "" for to=<>
    domain: str  # after the last "@"; "" when there is none
    orig_to: str | None
    relay_host: str | None  # None for relay=none; "local", "virtual", a transport name, a host
    relay_ip: str | None  # the bracketed part: an IP, or a socket path for unix-domain LMTP
    relay_port: int | None
    dsn: str  # "4.7.0"
    status: str  # sent | deferred | bounced
    reply: str  # the parenthesised text, at most 1000 characters
    reason: str
    line: str


@dataclass(slots=True)
class MessageFrom:
    """qmgr ``from=<x>, size=N, nrcpt=M (queue active)``: the message entered the active queue
    (once per delivery round, so a deferred message logs it again on every retry)."""

    ts: float
    host: str
    syslog_name: str
    queue_id: str
    sender: str  # "" for the null sender of bounces and notifications
    size: int
    nrcpt: int


@dataclass(slots=True)
class Expired:
    """qmgr ``from=<x>, status=expired, returned to sender``: Postfix gave up on the message."""

    ts: float
    host: str
    syslog_name: str
    queue_id: str
    sender: str


@dataclass(slots=True)
class Notification:
    """bounce/defer/trace ``sender non-delivery notification: NEWQID``: Postfix queued a notice
    (``notice_queue_id``) about ``queue_id``; that notice is not campaign mail."""

    ts: float
    host: str
    syslog_name: str
    queue_id: str
    notice_queue_id: str
    kind: str  # "sender non-delivery", "sender delivery status", "postmaster non-delivery", ...


@dataclass(slots=True)
class Removed:
    """qmgr ``removed``: the message left the queue (delivered, bounced or expired)."""

    ts: float
    host: str
    syslog_name: str
    queue_id: str


Event: TypeAlias = Attempt | MessageFrom | Expired | Notification | Removed


@dataclass(frozen=True, slots=True)
class ParseStats:
    """What the parser saw; ``lines`` is the sum of the other counters.

    ``malformed`` counts lines that are not syslog lines at all (garbage, a line cut inside its
    header) and Postfix delivery/queue lines whose fields cannot be read (cut before
    ``status=``, a broken timestamp). ``samples`` holds the first few, made printable.
    """

    lines: int
    attempts: int  # Attempt events
    queue_events: int  # MessageFrom, Expired, Notification and Removed events
    inbound: int  # smtpd, postscreen, anvil, dnsblog, tlsproxy: counted, never events
    other: int  # every other Postfix line (cleanup, pickup, TLS chatter, "host X said:" ...)
    non_postfix: int  # cron, sshd, ... and blank lines
    malformed: int
    samples: tuple[str, ...] = ()
