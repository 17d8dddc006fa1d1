"""Realistic Postfix fleet logs from a seeded random generator.

Used by ``inboxops demo`` (a 14-day story: the dedicated Microsoft IP of ``postfix-out07`` starts
getting blocked on the last days), by the tests (the parser must read every line and agree with
the ground truth in :class:`Summary`) and by ``bench/reputation`` (1M and 5M-line logs).

One file interleaves several hosts the way a central syslog server does: sending instances
(``postfix-out05``, ``postfix-out06``, ``postfix-out07`` whose Microsoft transport logs as
``postfix-out07/msft``, ``postfix-hc`` with long queue ids, a relay logging as ``postfix/relay``)
and an inbound MX (postscreen, smtpd, dnsblog, anvil, LMTP to Dovecot), plus cron, sshd and
kernel lines. A message goes through the usual sequence (smtpd or pickup, cleanup, qmgr, smtp
attempts, bounce notices, ``removed``); deferred recipients are retried with a growing backoff
and expire after a day. Replies come from per-operator catalogues written after
``shared/reference/provider-replies.md``; each carries the reason class the classifier must
find, so one test checks the generator, the parser and the classifier against each other.

Deterministic per seed. Time is a function of the line index (spread over ``days`` with a daily
rhythm), so any size spans the requested period; lines are made in chunks, never all in memory.
"""

from __future__ import annotations

import gzip
import heapq
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Final

from inboxops.demo.maillog_catalogue import (
    FLEET,
    INTERNAL,
    MS_BLOCKED,
    NAMES,
    OPERATORS,
    STORY_NAME,
    Instance,
    Operator,
    Reply,
)
from inboxops.reputation.reasons import ACCEPTED

STYLES: Final = ("traditional", "rfc3339", "postlogd")
LIFETIME: Final = 86400.0  # maximal_queue_lifetime = 1d, as bulk senders often set it
BACKOFF: Final = (300, 900, 2100, 4500, 9300, 18000, 36000, 54000)
# Counter slots, in the order of the parser's ParseStats fields.
ATTEMPT, QUEUE, INBOUND, OTHER, NON_POSTFIX, MALFORMED = range(6)
# fmt: off
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                  "Dec")
# relative mail volume by local hour: quiet nights, a morning peak, an evening campaign
_HOURS: Final = (3, 2, 2, 2, 2, 3, 5, 8, 11, 13, 14, 13, 12, 12, 12, 11, 10, 10, 11, 12, 11, 9,
                 6, 4)
# fmt: on
_LONG_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
_HMS: list[str] = []  # "HH:MM:SS" by second of the day, built on first use
_TLS_CIPHER = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"
_IPV6_NOISE = (
    "connect to gmail-smtp-in.l.google.com[2607:f8b0:400d:c0e::1a]:25: Network is unreachable"
)
_TLS_NOISE = (
    "warning: TLS library problem: error:0A000126:SSL routines::unexpected eof while reading"
)
_CRON = "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"
_SYSTEMD = "Started session-4711.scope - Session 4711 of User deploy."


@dataclass
class Summary:
    """Ground truth of one generated log: what a correct parser must count."""

    style: str
    seed: int
    start: datetime
    end: datetime
    story: str
    story_since: datetime
    path: Path | None = None
    lines: int = 0
    counts: list[int] = field(default_factory=lambda: [0] * 6)  # by the slots above
    messages: int = 0  # outbound messages injected (bounce notices not counted)
    statuses: Counter[str] = field(default_factory=Counter)  # intact attempts by status
    reasons: Counter[str] = field(default_factory=Counter)  # intact attempts by reason class
    by_syslog_name: Counter[str] = field(default_factory=Counter)  # intact attempts
    expired: int = 0
    notifications: int = 0

    @property
    def attempts(self) -> int:
        return self.counts[ATTEMPT]

    @property
    def queue_events(self) -> int:
        return self.counts[QUEUE]

    @property
    def malformed(self) -> int:
        """Lines broken on purpose (cut mid-line, garbage bytes): all must count as malformed."""
        return self.counts[MALFORMED]


@dataclass(slots=True)
class _Message:
    qid: str
    inst: Instance
    sender: str
    size: int
    arrived: float
    pending: list[tuple[str, Operator]]  # recipients still to deliver
    tries: int = 0


def _fmt_delay(x: float) -> str:
    """Postfix's style: two significant digits below 10 s, whole seconds above."""
    return str(round(x)) if x >= 10 else ("0" if x < 0.005 else f"{x:.2g}")


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


class FleetLog:
    """Iterate to get the lines (with newlines); :attr:`summary` is complete once exhausted."""

    def __init__(
        self,
        *,
        lines: int = 100_000,
        seed: int = 7,
        start: date | datetime | None = None,
        days: int = 14,
        style: str = "traditional",
        tz: tzinfo = UTC,
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}")
        if start is None:
            start = datetime.now(UTC).date() - timedelta(days=days)
        if not isinstance(start, datetime):
            start = datetime(start.year, start.month, start.day, tzinfo=tz)
        elif start.tzinfo is None:
            start = start.replace(tzinfo=tz)
        self.target, self.style, self.tz, self.days = max(lines, 1), style, tz, max(days, 1)
        self.rng = random.Random(seed)
        self.t0 = start.timestamp()
        story_day = max(self.days - 3, self.days // 2)
        self.story_since = self.t0 + story_day * 86400
        self.summary = Summary(
            style,
            seed,
            start,
            start + timedelta(days=self.days),
            story=f"{STORY_NAME} (192.0.2.27) is blocked by Microsoft from day {story_day + 1}",
            story_since=start + timedelta(days=story_day),
        )
        # time as a function of the line index: hourly weights with a daily rhythm, quieter
        # weekends
        weekday = start.weekday()
        hours = [
            _HOURS[h % 24] * (0.7 if (weekday + h // 24) % 7 >= 5 else 1.0)
            for h in range(self.days * 24)
        ]
        total = sum(hours)
        self._hour_end = [c / total for c in _cumulative(hours)]
        self._hour = 0
        self._now = self.t0
        self._op_cum = _cumulative([op.weight for op in OPERATORS])
        self._inst_cum = _cumulative([i.weight for i in FLEET])
        self._queue: list[tuple[float, int, _Message]] = []
        self._seq = 0
        self._pids: dict[str, int] = {}
        self._buf: list[str] = []
        n_broken = max(4, self.target // 40_000)
        self._broken = sorted(self.rng.sample(range(self.target), min(n_broken, self.target)))
        self._broken.reverse()  # pop() from the end gives the next index
        self._sec = self._recheck = self._day = -1
        self._offset = 0
        self._prefix = self._suffix = self._second = ""
        if not _HMS:
            _HMS.extend(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400))

    # -- time ---------------------------------------------------------------------------------

    def _time_at(self, n: int) -> float:
        f = n / self.target
        ends, h = self._hour_end, self._hour
        while h < len(ends) - 1 and ends[h] <= f:
            h += 1
        self._hour = h
        begin = ends[h - 1] if h else 0.0
        return self.t0 + 3600 * (h + (f - begin) / ((ends[h] - begin) or 1.0))

    def _stamp(self, ts: float) -> str:
        """The line's time stamp; memoised per second (a message's lines share one or two)."""
        sec = int(ts)
        if sec != self._sec:
            self._sec = sec
            if sec >= self._recheck:  # zone offsets change on quarter hours at the finest
                self._recheck = sec - sec % 900 + 900
                off = self.tz.utcoffset(datetime.fromtimestamp(sec, UTC))
                if (int(off.total_seconds()) if off else 0) != self._offset:
                    self._offset = int(off.total_seconds()) if off else 0
                    self._day = -1
            local = sec + self._offset
            if local // 86400 != self._day:
                self._day = local // 86400
                self._prefix = self._day_prefix(local - local % 86400)
            self._second = self._prefix + _HMS[local % 86400]
        if self.style == "rfc3339":
            return f"{self._second}.{int((ts - sec) * 1e6):06d}{self._suffix}"
        return self._second

    def _day_prefix(self, local_midnight: int) -> str:
        d = datetime.fromtimestamp(local_midnight, UTC)
        if self.style == "rfc3339":
            sign, a = ("-", -self._offset) if self._offset < 0 else ("+", self._offset)
            self._suffix = f"{sign}{a // 3600:02d}:{a // 60 % 60:02d}"
            return f"{d:%Y-%m-%d}T"
        day = f"{d.day:2d}" if self.style == "traditional" else f"{d.day:02d}"
        return f"{_MONTHS[d.month - 1]} {day} "

    def _clock(self) -> str:
        """The time as Postfix writes it inside a message (anvil, scache statistics)."""
        return datetime.fromtimestamp(self._now, self.tz).strftime("%b %d %H:%M:%S")

    # -- output -------------------------------------------------------------------------------

    def _emit(
        self, host: str, prog: str, text: str, slot: int, reason: str = "", status: str = ""
    ) -> int:
        """Append one line; returns its slot (MALFORMED when it was broken on purpose)."""
        pid = self._pids.get(prog)
        if pid is None or self.rng.random() < 0.003:  # processes come and go
            pid = self._pids[prog] = 1000 + int(self.rng.random() * 64000)
        s = self.summary
        if slot <= QUEUE and self._broken and s.lines >= self._broken[-1]:
            text, slot = self._break(text, slot)
        self._buf.append(f"{self._stamp(self._now)} {host} {prog}[{pid}]: {text}\n")
        s.lines += 1
        s.counts[slot] += 1
        if slot == ATTEMPT:
            s.reasons[reason] += 1
            s.statuses[status] += 1
            s.by_syslog_name[prog] += 1
        self._now += self.rng.random() * 0.3
        return slot

    def _break(self, text: str, slot: int) -> tuple[str, int]:
        """A line damaged on purpose: cut before its end, or with garbage bytes in a field."""
        self._broken.pop()
        way = len(self._broken) % 4
        if way == 0 and slot == ATTEMPT:  # cut mid-line, after to=< and before status=
            return text[: text.index(", relay=") + self.rng.randrange(3, 30)], MALFORMED
        if way == 1 and slot == ATTEMPT:  # invalid UTF-8 (decoded with errors=replace), ESC, NUL
            return text.replace(", dsn=", ", d\ufffd\x1b[2J\x00n="), MALFORMED
        if way == 2 and ": from=<" in text:
            return text[: text.index(", ") + 4], MALFORMED
        if way == 3:  # a run of NULs, as syslog leaves after a crash, then the intact line
            self._buf.append("\x00" * self.rng.randrange(8, 64) + "\ufffd\ufffd\n")
            self.summary.lines += 1
            self.summary.counts[MALFORMED] += 1
            return text, slot
        self._broken.append(self.summary.lines + 1)  # not this kind of line: try the next one
        return text, slot

    def _qid(self, inst: Instance) -> str:
        if inst.long_ids:
            n, out = self.rng.getrandbits(80), []
            for _ in range(15):
                n, r = divmod(n, 51)
                out.append(_LONG_ALPHABET[r])
            return "".join(out)
        return f"{self.rng.getrandbits(44):011X}"

    def _pick(self, cum: list[float]) -> int:
        x = self.rng.random() * cum[-1]
        lo, hi = 0, len(cum) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if cum[mid] > x:
                hi = mid
            else:
                lo = mid + 1
        return lo

    # -- outbound mail ------------------------------------------------------------------------

    def _recipient(self) -> tuple[str, Operator]:
        op = OPERATORS[self._pick(self._op_cum)]
        rng = self.rng
        domain = op.domains[int(rng.random() * len(op.domains))]
        if op.seeds and rng.random() < 0.02:
            return f"seed-{op.name}-{rng.randrange(1, 13):02d}@{domain}", op
        name = NAMES[int(rng.random() * len(NAMES))]
        return f"{name}.{rng.randrange(1, 9999)}@{domain}", op

    def _new_message(self) -> None:
        rng, s = self.rng, self.summary
        inst = FLEET[self._pick(self._inst_cum)]
        qid, sender = self._qid(inst), inst.senders[int(rng.random() * len(inst.senders))]
        pre, host = inst.name, inst.host
        n = 1 if rng.random() < 0.85 else rng.randrange(2, 5)
        rcpts = [self._recipient() for _ in range(n)]
        size = rng.randrange(4000, 90000)
        client = f"app{rng.randrange(1, 5)}.int.example[10.0.1.{rng.randrange(10, 20)}]"
        picked_up = rng.random() < 0.1
        if picked_up:
            self._emit(host, f"{pre}/pickup", f"{qid}: uid=1001 from=<{sender}>", OTHER)
        else:
            self._emit(host, f"{pre}/smtpd", f"connect from {client}", INBOUND)
            self._emit(host, f"{pre}/smtpd", f"{qid}: client={client}", INBOUND)
        text = f"{qid}: message-id=<{qid}.{rng.getrandbits(32):x}@{sender.split('@')[1]}>"
        self._emit(host, f"{pre}/cleanup", text, OTHER)
        text = f"{qid}: from=<{sender}>, size={size}, nrcpt={n} (queue active)"
        self._emit(host, f"{pre}/qmgr", text, QUEUE)
        if not picked_up:
            text = f"disconnect from {client} ehlo=1 mail=1 rcpt={n} data=1 quit=1 commands={4 + n}"
            self._emit(host, f"{pre}/smtpd", text, INBOUND)
        s.messages += 1
        self._round(_Message(qid, inst, sender, size, self._now, rcpts))

    def _round(self, msg: _Message) -> None:
        """One delivery round over the message's pending recipients."""
        pending, msg.pending, bounced = msg.pending, [], False
        for rcpt, op in pending:
            reply = self._draw(msg, op)
            self._attempt(msg, rcpt, op, reply)
            if reply is not None and reply.status == "deferred":
                msg.pending.append((rcpt, op))
            bounced = bounced or (reply is not None and reply.status == "bounced")
        inst, qmgr = msg.inst, f"{msg.inst.name}/qmgr"
        if msg.pending and self._now - msg.arrived >= LIFETIME:
            text = f"{msg.qid}: from=<{msg.sender}>, status=expired, returned to sender"
            if self._emit(inst.host, qmgr, text, QUEUE) == QUEUE:
                self.summary.expired += 1
            msg.pending, bounced = [], True
        if bounced:
            self._notify(msg, "sender non-delivery")
        elif msg.tries == 3 and msg.pending and self.rng.random() < 0.3:
            self._notify(msg, "sender delay")
        if msg.pending:
            due = self._now + BACKOFF[min(msg.tries, len(BACKOFF) - 1)] * (
                0.8 + self.rng.random() * 0.4
            )
            msg.tries += 1
            self._seq += 1
            heapq.heappush(self._queue, (due, self._seq, msg))
        else:
            self._emit(inst.host, qmgr, f"{msg.qid}: removed", QUEUE)

    def _draw(self, msg: _Message, op: Operator) -> Reply | None:
        rng, failures, rate = self.rng, op.failures, op.fail_rate
        if op.name in ("outlook", "m365") and msg.inst.msft and self._now >= self.story_since:
            failures, rate = MS_BLOCKED, 0.8
        if msg.tries and not op.dead:
            rate = 0.3  # throttling, then success on retry
            failures = tuple(r for r in failures if r.status == "deferred") or failures
        if rng.random() >= rate:
            return None
        x = rng.random() * sum(r.weight for r in failures)
        for reply in failures:
            x -= reply.weight
            if x < 0:
                return reply
        return failures[-1]

    def _attempt(self, msg: _Message, rcpt: str, op: Operator, reply: Reply | None) -> None:
        rng, inst = self.rng, msg.inst
        msft = bool(inst.msft) and op.name in ("outlook", "m365")
        prog, ip = (inst.msft, inst.msft_ip) if msft else (inst.smtp, inst.ip)
        domain = rcpt.rpartition("@")[2]
        mx = op.mx[int(rng.random() * len(op.mx))]
        mx = domain.replace(".", "-") + mx[1:] if mx[0] == "*" else mx.format(domain=domain)
        mxip = op.ips[int(rng.random() * len(op.ips))]
        tid, hexid = f"{rng.getrandbits(64):016x}", f"{rng.getrandbits(40):010X}"
        fields = dict(ip=ip, rcpt=rcpt, domain=domain, mx=mx, mxip=mxip, tid=tid, hex=hexid)
        fields["epoch"] = str(int(self._now))
        relay = f"{mx}[{mxip}]:25"
        if reply is None:
            status, dsn, reason = "sent", "2.0.0", ACCEPTED
            text = op.sent.format(**fields)
            if rng.random() < 0.3:
                text_tls = f"Trusted TLS connection established to {relay}: {_TLS_CIPHER}"
                self._emit(inst.host, prog, text_tls, OTHER)
        else:
            status, dsn, reason = reply.status, reply.dsn, reply.reason
            text = reply.text.format(**fields)
            if reply.kind in ("said", "session"):
                text = f"host {mx}[{mxip}] said: {text} (in reply to {reply.command} command)"
                if reply.kind == "session":
                    self._emit(inst.host, prog, f"{msg.qid}: {text}", OTHER)
            elif reply.kind == "none":
                relay = "none"
        wait = self._now - msg.arrived
        delays = (
            f"{_fmt_delay(wait)}/0.01/{_fmt_delay(rng.random() * 0.5)}/{_fmt_delay(rng.random())}"
        )
        conn = f"conn_use={rng.randrange(2, 9)}, " if relay != "none" and rng.random() < 0.1 else ""
        text = (
            f"{msg.qid}: to=<{rcpt}>, relay={relay}, {conn}delay={_fmt_delay(wait + 0.5)}, "
            f"delays={delays}, dsn={dsn}, status={status} ({text})"
        )
        self._emit(inst.host, prog, text, ATTEMPT, reason, status)

    def _notify(self, msg: _Message, kind: str) -> None:
        """The notice Postfix sends back to the sender (from=<>): never campaign mail."""
        inst, nq, emit = msg.inst, self._qid(msg.inst), self._emit
        text = f"{msg.qid}: {kind} notification: {nq}"
        if emit(inst.host, f"{inst.name}/bounce", text, QUEUE) == QUEUE:
            self.summary.notifications += 1
        emit(inst.host, f"{inst.name}/cleanup", f"{nq}: message-id=<{nq}@{inst.host}>", OTHER)
        text = f"{nq}: from=<>, size=4210, nrcpt=1 (queue active)"
        emit(inst.host, f"{inst.name}/qmgr", text, QUEUE)
        self._attempt(_Message(nq, inst, "", 4210, self._now, []), msg.sender, INTERNAL, None)
        emit(inst.host, f"{inst.name}/qmgr", f"{nq}: removed", QUEUE)

    # -- everything else a fleet logs ---------------------------------------------------------

    def _inbound(self) -> None:
        """A session at the inbound MX: postscreen, smtpd, sometimes mail for int.example."""
        rng, emit, host = self.rng, self._emit, "mx1"
        ip = f"{rng.choice(('203.0.113', '198.51.100'))}.{rng.randrange(1, 255)}"
        peer = f"[{ip}]:{rng.randrange(1024, 65535)}"
        emit(host, "postfix/postscreen", f"CONNECT from {peer} to [192.0.2.1]:25", INBOUND)
        if rng.random() < 0.25:
            text = f"addr {ip} listed by domain zen.spamhaus.org as 127.0.0.2"
            emit(host, "postfix/dnsblog", text, INBOUND)
            emit(host, "postfix/postscreen", f"DNSBL rank 3 for {peer}", INBOUND)
            emit(host, "postfix/postscreen", f"DISCONNECT {peer}", INBOUND)
            return
        emit(host, "postfix/postscreen", f"PASS OLD {peer}", INBOUND)
        helo = f"mail{rng.randrange(1, 99)}.sender.example"
        client = f"{helo}[{ip}]"
        emit(host, "postfix/smtpd", f"connect from {client}", INBOUND)
        if rng.random() < 0.3:
            text = (
                f"NOQUEUE: reject: RCPT from {client}: 554 5.7.1 Service unavailable; Client host "
                f"[{ip}] blocked using zen.spamhaus.org; from=<x@sender.example> "
                f"to=<info@shop.example> proto=ESMTP helo=<{helo}>"
            )
            emit(host, "postfix/smtpd", text, INBOUND)
        elif rng.random() < 0.7:  # accepted for a local mailbox, delivered by LMTP to Dovecot
            qid = f"{rng.getrandbits(44):011X}"
            rcpt = f"{NAMES[int(rng.random() * len(NAMES))]}@int.example"
            emit(host, "postfix/smtpd", f"{qid}: client={client}", INBOUND)
            emit(host, "postfix/cleanup", f"{qid}: message-id=<{qid}@{helo}>", OTHER)
            text = f"{qid}: from=<news@sender.example>, size=5000, nrcpt=1 (queue active)"
            emit(host, "postfix/qmgr", text, QUEUE)
            text = (
                f"{qid}: to=<{rcpt}>, relay=mail.int.example[private/dovecot-lmtp], delay=0.1, "
                f"delays=0.05/0/0/0.05, dsn=2.0.0, status=sent (250 2.0.0 <{rcpt}> "
                f"{rng.getrandbits(48):x} Saved)"
            )
            emit(host, "postfix/lmtp", text, ATTEMPT, ACCEPTED, "sent")
            emit(host, "postfix/qmgr", f"{qid}: removed", QUEUE)
        text = f"disconnect from {client} ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"
        emit(host, "postfix/smtpd", text, INBOUND)
        if rng.random() < 0.05:
            text = f"statistics: max connection rate 3/60s for (smtp:{ip}) at {self._clock()}"
            emit(host, "postfix/anvil", text, INBOUND)

    def _noise(self) -> None:
        """Housekeeping lines of Postfix and of the rest of the system."""
        rng, inst = self.rng, FLEET[self._pick(self._inst_cum)]
        r = rng.random()
        if r < 0.3:
            prog, text, slot = (
                f"{inst.name}/scache",
                f"statistics: start interval {self._clock()}",
                OTHER,
            )
        elif r < 0.5:
            prog, text, slot = inst.smtp, _IPV6_NOISE, OTHER
        elif r < 0.6:
            prog, text, slot = f"{inst.name}/smtp", _TLS_NOISE, OTHER
        elif r < 0.8:
            prog, text, slot = "CRON", _CRON, NON_POSTFIX
        elif r < 0.95:
            peer = f"203.0.113.{rng.randrange(1, 255)} port {rng.randrange(1024, 65535)}"
            prog, text, slot = "sshd", f"Connection closed by {peer} [preauth]", NON_POSTFIX
        else:
            prog, text, slot = "systemd", _SYSTEMD, NON_POSTFIX
        self._emit(inst.host, prog, text, slot)

    # -- the loop -----------------------------------------------------------------------------

    def chunks(self) -> Iterator[list[str]]:
        """Lines in lists of a few thousand; ``summary`` is final when this is exhausted."""
        queue, rng, s = self._queue, self.rng, self.summary
        while s.lines < self.target:
            self._now = max(self._now, self._time_at(s.lines))
            while queue and queue[0][0] <= self._now:
                msg = heapq.heappop(queue)[2]
                text = f"{msg.qid}: from=<{msg.sender}>, size={msg.size}, nrcpt={len(msg.pending)}"
                self._emit(msg.inst.host, f"{msg.inst.name}/qmgr", f"{text} (queue active)", QUEUE)
                self._round(msg)
            r = rng.random()
            if r < 0.5:
                self._new_message()
            elif r < 0.85:
                self._inbound()
            else:
                self._noise()
            if len(self._buf) >= 4096:
                yield self._buf
                self._buf = []
        if self._buf:
            yield self._buf
            self._buf = []

    def __iter__(self) -> Iterator[str]:
        for chunk in self.chunks():
            yield from chunk


def write_maillog(
    path: Path,
    *,
    lines: int = 100_000,
    seed: int = 7,
    start: date | datetime | None = None,
    days: int = 14,
    style: str = "traditional",
    tz: tzinfo = UTC,
) -> Summary:
    """Write about ``lines`` lines (gzip when the name ends in ``.gz``); returns the truth."""
    log = FleetLog(lines=lines, seed=seed, start=start, days=days, style=style, tz=tz)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8", newline="\n") as fh:
        for chunk in log.chunks():
            fh.write("".join(chunk))
    log.summary.path = path
    return log.summary
