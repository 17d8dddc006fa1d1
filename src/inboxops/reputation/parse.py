"""Postfix log lines -> a stream of :mod:`~inboxops.reputation.model` events.

Pure and streaming: the caller opens the file (plain, ``.gz``, stdin) with ``errors="replace"``
and hands over an iterable of ``str`` lines; memory stays constant apart from small bounded
caches (syslog names, minutes, relays, and reply classes in ``reasons``). Nothing raises on bad
input: a line that cannot be read is counted as ``malformed``, and the first few are kept,
printable, for the error message.

Formats: traditional syslog (``Jun  4 07:00:01 host prog[pid]: text``), Postfix's own
``maillog_file`` written by postlogd (``Jun 04 07:00:01 ...``, zero-padded day) and RFC 3339
(``2021-04-21T17:16:28.123456+02:00 host prog[pid]: text``, ``Z``, ``+0200``, or no zone).
Year-less and zone-less stamps are read in the parser's ``tz``. The year of a year-less log is
inferred (see :class:`PostfixLogParser`), and moves on when the month jumps back (Dec -> Jan).

Speed is a product requirement (a fleet's day of logs in seconds), so the loop is written for
it: ``str.split`` instead of a header regex, a substring test before any regex, syslog names and
minutes memoised, no datetime per line, and reply classification memoised in ``reasons``. Most
lines of a fleet log are inbound or housekeeping and cost one split and one dict lookup.

:meth:`PostfixLogParser.records` yields each event as a plain tuple: its kind (the index of its
class in :data:`EVENT_TYPES`) and then the class's fields in order. :meth:`PostfixLogParser.parse`
turns those into the event classes; the ingest pipeline reads the tuples themselves
(:mod:`~inboxops.reputation.collect`), since building an object per event costs more than
everything the collector does with it. The common lines are read by the C scanner
(``_scan.c``), every other by :meth:`PostfixLogParser._loop`, the reference it is tested
against; timestamps by :class:`~inboxops.reputation.clock.Clock`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from itertools import chain, islice
from typing import Any, Final, TypeAlias, TypeVar

from inboxops.reputation.clock import CACHE_LIMIT, Clock
from inboxops.reputation.model import (
    Attempt,
    Event,
    Expired,
    MessageFrom,
    Notification,
    ParseStats,
    Removed,
)
from inboxops.reputation.reasons import ACCEPTED, classify
from inboxops.untrusted import one_line

try:  # the C scanner (_scan.c), built by pip install; without it the Python loop reads all
    from inboxops.reputation import _scan
except ImportError:  # pragma: no cover - a build without a C compiler
    _scan = None  # type: ignore[assignment]

MAX_REPLY: Final = 1000
MAX_SAMPLES: Final = 5

DELIVERY_SERVICES: Final = frozenset(
    {"smtp", "lmtp", "local", "virtual", "pipe", "error", "retry", "discard"}
)
QUEUE_MANAGERS: Final = frozenset({"qmgr", "nqmgr", "oqmgr"})
NOTIFIERS: Final = frozenset({"bounce", "defer", "trace"})
INBOUND_SERVICES: Final = frozenset({"smtpd", "postscreen", "anvil", "dnsblog", "tlsproxy"})
OTHER_SERVICES: Final = frozenset(
    {
        "cleanup", "pickup", "master", "postlogd", "tlsmgr", "scache", "verify", "proxymap",
        "proxywrite", "showq", "flush", "postdrop", "sendmail", "postqueue", "postsuper",
        "postfix-script", "postmap", "postalias", "postconf", "postmulti", "postlog", "spawn",
        "qmqpd", "trivial-rewrite", "rewrite", "postkick",
    }
)  # fmt: skip
POSTFIX_SERVICES: Final = (
    DELIVERY_SERVICES | QUEUE_MANAGERS | NOTIFIERS | INBOUND_SERVICES | OTHER_SERVICES
)

# Counter slots; a syslog name's kind below 10 is the slot its lines are counted in.
_ATTEMPTS, _QUEUE, _INBOUND, _OTHER, _NON_POSTFIX, _MALFORMED = range(6)
_K_DELIVERY, _K_QMGR, _K_NOTIFY, _K_BAD = 10, 11, 12, 13

# The patterns spell out [0-9] and negated classes instead of \d, \s and lazy quantifiers (each
# of those costs Python's engine several times more), and stop at "status=... (": the reply and
# the relay's host[ip]:port are cut with str methods. Queue ids: upper-case hex (DA572164318),
# the long ids' digits and consonants (4Z3Qc05q1Lz9vCg), NOQUEUE.
_QID = r"[0-9A-Za-z]{5,25}"
_TAIL = (
    r"relay=([^,]*), (?:conn_use=[0-9]+, )?delay=[0-9.]+, (?:delays=[0-9./]+, )?"
    r"dsn=([245]\.[0-9]{1,3}\.[0-9]{1,3}), status=([A-Za-z]+) \("
)
_DELIVERY = re.compile(rf"({_QID}): to=<([^>]*)>, (?:orig_to=<([^>]*)>, )?{_TAIL}")
# ... and when that fails, an address may hold a '>' (a quoted local part): the patient pattern.
_DELIVERY_QUOTED = re.compile(rf"({_QID}): to=<(.*?)>, (?:orig_to=<(.*?)>, )?{_TAIL}")
_FROM_END = (
    r"(?:size=([0-9]+), nrcpt=([0-9]+) \(queue active\)|(status=expired), returned to sender)"
)
_FROM = re.compile(rf"({_QID}): from=<([^>]*)>, {_FROM_END}[\r\n]*\Z")
_FROM_QUOTED = re.compile(rf"({_QID}): from=<(.*)>, {_FROM_END}[\r\n]*\Z")
_NOTICE = re.compile(rf"({_QID}): ([a-z]+ [a-z -]+?) notification: ({_QID})[\r\n]*\Z")
_REMOVED = re.compile(rf"({_QID}): removed[\r\n]*\Z")
# soft_bounce=yes logs SOFTBOUNCE where it would have bounced: the mail stays queued
_STATUSES: Final = {
    "sent": "sent",
    "deferred": "deferred",
    "bounced": "bounced",
    "SOFTBOUNCE": "deferred",
}
ACCELERATED: Final = _scan is not None  # whether the C scanner was built
_SCAN_CHUNK: Final = 4096  # lines handed to the C scanner at a time
_SECONDS: Final = {f"{n:02d}": n for n in range(61)}

# What :meth:`PostfixLogParser.records` yields: (kind, *fields of EVENT_TYPES[kind]).
ATTEMPT, MESSAGE_FROM, EXPIRED, NOTIFICATION, REMOVED = range(5)
EVENT_TYPES: Final[tuple[Callable[..., Event], ...]] = (
    Attempt,
    MessageFrom,
    Expired,
    Notification,
    Removed,
)
Record: TypeAlias = tuple[Any, ...]


_Relay: TypeAlias = tuple[str | None, str | None, int | None]  # host, ip, port
_T = TypeVar("_T")
_BAD_RELAY: Final[_Relay] = ("", "", None)


def _relay(cache: dict[str, _Relay], relay: str) -> _Relay:
    """``host[ip]:port``, ``host[ip]``, ``host[private/dovecot-lmtp]``, ``none``, ``local``,
    ``dovecot`` -> (host or None, ip, port); memoised, since a fleet talks to few MX hosts."""
    host, bracket, rest = relay.partition("[")
    where: _Relay
    if not bracket:
        where = (None if relay == "none" else relay, None, None)
    else:
        ip, close, tail = rest.partition("]")
        if not close or (tail and (tail[0] != ":" or not tail[1:].isdigit())):
            where = _BAD_RELAY
        else:
            where = (host, ip, int(tail[1:]) if tail else None)
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[relay] = where
    return where


def _chunked(items: Iterator[_T]) -> Iterator[list[_T]]:
    """``items`` in lists of up to :data:`_SCAN_CHUNK`. When the source fails (a truncated
    ``.gz``, a dropped pipe), the items read before the failure still come out, then the
    error is raised: nothing read is lost."""
    while True:
        chunk: list[_T] = []
        try:
            chunk.extend(islice(items, _SCAN_CHUNK))  # keeps what it got when the source raises
        except BaseException:
            if chunk:
                yield chunk
            raise
        if not chunk:
            return
        yield chunk


class PostfixLogParser:
    """Reads Postfix log lines; counters accumulate over every :meth:`parse` call.

    ``tz`` is the zone of stamps that carry none. ``year`` (the year of the first line) and
    ``ref`` (the file's mtime, or now) drive year inference for syslog stamps; both can be given
    per :meth:`parse` call, one call per file. ``ref`` defaults to the current time.
    """

    def __init__(
        self,
        *,
        tz: tzinfo = UTC,
        year: int | None = None,
        ref: datetime | None = None,
        accelerated: bool = True,
    ) -> None:
        self.tz = tz
        self.year = year
        self.ref = ref
        # the C scanner reads the common lines when it was built (see :data:`ACCELERATED`);
        # False keeps every line in the Python loop (the reference the tests compare it to)
        self.accelerated = accelerated
        self._counts = [0] * 6
        self._samples: list[str] = []
        self._names: dict[str, tuple[str, str, int]] = {}

    # -- counters -----------------------------------------------------------------------------

    @property
    def lines(self) -> int:
        return sum(self._counts)

    @property
    def attempts(self) -> int:
        return self._counts[_ATTEMPTS]

    @property
    def queue_events(self) -> int:
        return self._counts[_QUEUE]

    @property
    def inbound(self) -> int:
        return self._counts[_INBOUND]

    @property
    def other(self) -> int:
        return self._counts[_OTHER]

    @property
    def non_postfix(self) -> int:
        return self._counts[_NON_POSTFIX]

    @property
    def malformed(self) -> int:
        return self._counts[_MALFORMED]

    @property
    def malformed_samples(self) -> tuple[str, ...]:
        return tuple(self._samples)

    @property
    def stats(self) -> ParseStats:
        c = self._counts
        return ParseStats(
            lines=sum(c),
            attempts=c[_ATTEMPTS],
            queue_events=c[_QUEUE],
            inbound=c[_INBOUND],
            other=c[_OTHER],
            non_postfix=c[_NON_POSTFIX],
            malformed=c[_MALFORMED],
            samples=tuple(self._samples),
        )

    # -- slow paths ---------------------------------------------------------------------------

    def _bad(self, line: str) -> None:
        """A line that is not a syslog line, or a Postfix line whose fields cannot be read."""
        stripped = line.strip()
        if not stripped or stripped.startswith("-- "):  # blank, or journalctl's "-- Boot ..."
            self._counts[_NON_POSTFIX] += 1
            return
        self._counts[_MALFORMED] += 1
        if len(self._samples) < MAX_SAMPLES:
            self._samples.append(one_line(line.rstrip("\r\n"), 300))

    def _learn(self, program: str) -> tuple[str, str, int]:
        """``postfix-out07/msft/smtp[123]:`` -> (syslog name, service, kind); memoised."""
        if len(self._names) >= CACHE_LIMIT:
            self._names.clear()
        name = program[:-1] if program.endswith(":") else ""
        if name.endswith("]"):
            name = name[: name.rfind("[")]
        service = name.rpartition("/")[2]
        if not name:
            kind = _K_BAD if "postfix" in program else _NON_POSTFIX
        elif "/" not in name or not (service in POSTFIX_SERVICES or name.startswith("postfix")):
            kind = _NON_POSTFIX
        elif service in DELIVERY_SERVICES:
            kind = _K_DELIVERY
        elif service in QUEUE_MANAGERS:
            kind = _K_QMGR
        elif service in NOTIFIERS:
            kind = _K_NOTIFY
        elif service in INBOUND_SERVICES:
            kind = _INBOUND
        else:
            kind = _OTHER
        info = (name, service, kind)
        self._names[program] = info
        return info

    # -- the hot loop -------------------------------------------------------------------------

    def parse(
        self, lines: Iterable[str], *, year: int | None = None, ref: datetime | None = None
    ) -> Iterator[Event]:
        """Events in log order. ``year``/``ref`` override the constructor's for this stream, whose
        first line anchors the year (see :class:`Clock`). Lazy: nothing is read until asked."""
        types = EVENT_TYPES
        for record in self.records(lines, year=year, ref=ref):
            yield types[record[0]](*record[1:])

    def records(
        self, lines: Iterable[str], *, year: int | None = None, ref: datetime | None = None
    ) -> Iterator[Record]:
        """:meth:`parse`'s events as tuples: ``(kind, *fields)``, kind an index of
        :data:`EVENT_TYPES` (``ATTEMPT`` ...), the fields in the order of that class. Lazy,
        like :meth:`parse`; the tuples come from lists of a few thousand (one C-level
        iteration each, instead of a generator step per event)."""
        return chain.from_iterable(self._batches(_chunked(iter(lines)), year, ref))

    def records_of_text(
        self, blocks: Iterable[str], *, year: int | None = None, ref: datetime | None = None
    ) -> Iterator[Record]:
        """:meth:`records` of ``blocks`` of whole lines, each read as
        ``block.splitlines(keepends=True)`` would cut it: the C scanner reads a block as it
        stands and makes a str only of the lines it keeps (a big file read in megabytes)."""
        return chain.from_iterable(self._batches(iter(blocks), year, ref))

    def _batches(
        self, pieces: Iterator[list[str] | str], year: int | None, ref: datetime | None
    ) -> Iterator[list[Record]]:
        """Records, a list per piece of the log: a list of lines, or a block of text."""
        reference = ref or self.ref or datetime.now(UTC)
        clock = Clock(self.tz, year if year is not None else self.year, reference)
        relays: dict[str, _Relay] = {}
        for head in pieces:
            if head:
                break
        else:
            return
        clock.anchor(head[0][:15] if isinstance(head, list) else head[:15])  # the first line's
        pieces = chain((head,), pieces)  # year is the one inferred (or given)
        loop = self._loop
        if _scan is None or not self.accelerated:
            for piece in pieces:
                lines = piece if isinstance(piece, list) else piece.splitlines(keepends=True)
                yield list(loop(lines, clock, relays))
            return
        # The C scanner reads the common lines and stops at any other; the Python loop reads
        # that one, with the same clock and caches, and the scanner goes on after it.
        scanner = _scan.Scanner(
            names=self._names,
            learn=self._learn,
            bad=self._bad,
            counts=self._counts,
            minutes=clock.minutes,
            syslog=clock.syslog,
            iso=clock.iso,
            relays=relays,
            relay=_relay,
            classify=classify,
            accepted=ACCEPTED,
            bad_relay=_BAD_RELAY,
        )
        scan, scan_text = scanner.scan, scanner.scan_text
        for piece in pieces:
            if isinstance(piece, str):
                if not piece.isascii():  # the scanner reads ASCII: this block line by line
                    piece = piece.splitlines(keepends=True)
                else:
                    position, end = 0, len(piece)
                    while position < end:
                        found, position, line = scan_text(piece, position)
                        yield found
                        if line is not None:
                            scanner.forget()  # the line below may move the clock on
                            yield list(loop((line,), clock, relays))
                    continue
            start, end = 0, len(piece)
            while start < end:
                found, start = scan(piece, start)
                yield found
                if start < end:
                    scanner.forget()
                    yield list(loop((piece[start],), clock, relays))
                    start += 1

    def _loop(
        self, lines: Iterable[str], clock: Clock, relays: dict[str, _Relay]
    ) -> Iterator[Record]:
        """The reference reading of each line: all of :meth:`records` without the scanner."""
        counts, names, learn, bad = self._counts, self._names, self._learn, self._bad
        minutes, syslog_ts, iso_ts = clock.minutes, clock.syslog, clock.iso
        delivery, from_, notice, removed = (
            _DELIVERY.match,
            _FROM.match,
            _NOTICE.match,
            _REMOVED.match,
        )
        last_stamp, last_ts = "\0", 0.0  # the last syslog stamp read, and its time
        ts: float | None
        for line in lines:
            # "Mmm dd hh:mm:ss host prog[pid]: text" (a fixed-width stamp), or
            # "2021-04-21T17:16:28+02:00 host prog[pid]: text". One split beats any regex.
            try:
                first = line[0]
                if first > "9":  # a month name (a letter): the classic stamp
                    parts = line.split(None, 5)
                    program = parts[4]
                elif first >= "0":
                    parts = line.split(None, 3)
                    program = parts[2]
                else:
                    bad(line)
                    continue
                info = names[program]
            except IndexError:  # an empty line, or too few fields: not a syslog line
                bad(line)
                continue
            except KeyError:
                info = learn(program)
            kind = info[2]
            if kind < 10:
                counts[kind] += 1
                continue
            if kind == _K_BAD:
                bad(line)
                continue

            # A line from a delivery agent, qmgr or the bounce daemon: maybe an event. The
            # stamp is read first so that each branch below can finish on its own.
            if first > "9":
                if line.startswith(last_stamp):  # the same second as the last event line
                    ts = last_ts
                else:
                    base = minutes.get(line[:12])
                    second = _SECONDS.get(line[13:15])
                    if base is not None and second is not None:
                        ts = base + second
                    else:
                        try:
                            ts = syslog_ts(line[:15]) if base is None else base + int(line[13:15])
                        except ValueError:
                            ts = None
                    if ts is not None:
                        last_stamp, last_ts = line[:15], ts
                host = parts[3]
            else:
                ts = iso_ts(parts[0])
                host = parts[1]
            if ts is None:
                bad(line)
                continue
            text = parts[-1]

            if kind == _K_QMGR:
                if ": from=<" in text:
                    m = from_(text) or _FROM_QUOTED.match(text)
                    if m is None:
                        bad(line)
                        continue
                    qid, sender, size, nrcpt, expired = m.groups()
                    counts[_QUEUE] += 1
                    if expired:
                        yield (EXPIRED, ts, host, info[0], qid, sender)
                    else:
                        yield (MESSAGE_FROM, ts, host, info[0], qid, sender, int(size), int(nrcpt))
                    continue
                if ": to=<" not in text:  # else qmgr deferring a suspended destination itself
                    m = removed(text)
                    if m is None:
                        counts[_OTHER] += 1
                    else:
                        counts[_QUEUE] += 1
                        yield (REMOVED, ts, host, info[0], m.group(1))
                    continue
            elif kind == _K_NOTIFY:
                if " notification: " not in text:
                    counts[_OTHER] += 1
                    continue
                m = notice(text)
                if m is None:
                    bad(line)
                    continue
                qid, what, notice_qid = m.groups()
                counts[_QUEUE] += 1
                yield (NOTIFICATION, ts, host, info[0], qid, notice_qid, what)
                continue
            elif ": to=<" not in text:  # TLS chatter, "host X said:", "connect to ...", warnings
                counts[_OTHER] += 1
                continue

            m = delivery(text) or _DELIVERY_QUOTED.match(text)
            # the reply runs to the closing parenthesis at the very end of the line
            cut = 2 if text[-2:] == ")\n" else 1 if text[-1:] == ")" else 3
            if m is None or (cut == 3 and text[-3:] != ")\r\n"):
                bad(line)
                continue
            qid, rcpt, orig_to, relay, dsn, status = m.groups()
            state = _STATUSES.get(status)
            if state is None:  # address verification probes: deliverable/undeliverable
                counts[_OTHER] += 1
                continue
            where = relays.get(relay) or _relay(relays, relay)
            if where is _BAD_RELAY:
                bad(line)
                continue
            reply = text[m.end() : -cut]
            if len(reply) > MAX_REPLY:
                reply = reply[:MAX_REPLY]
            rcpt = rcpt.lower()
            at_sign = rcpt.rfind("@")
            counts[_ATTEMPTS] += 1
            yield (
                ATTEMPT,
                ts,
                host,
                info[0],
                info[1],
                qid,
                rcpt,
                rcpt[at_sign + 1 :] if at_sign >= 0 else "",
                orig_to,
                where[0],
                where[1],
                where[2],
                dsn,
                state,
                reply,
                ACCEPTED if state == "sent" else classify(state, dsn, reply),
                line[: 1 - cut] if cut > 1 else line,
            )
