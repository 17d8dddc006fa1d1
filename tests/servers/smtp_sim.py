"""SMTP "operator simulators" on loopback: receiving MX hosts that answer like Gmail, Microsoft...

Each simulated MX host (``gmail-smtp-in.l.google.com``, ``mta5.am0.yahoodns.net``, ...) listens
on its own 127.0.0.x address, so a real Postfix that relays to it logs ``relay=`` with the
operator's MX name, and the simulator sees which sending IP (``smtp_bind_address``) connected.

What a recipient gets is scripted, per attempt. By default the local part names the behaviour
(``throttle-1@yahoo.com``) and the operator supplies the wording (Yahoo's ``[TSS04]``):

- ``accept`` (any unknown local part): accepted
- ``throttle``: the operator's 4xx rate limit on the first attempt, accepted on the next
- ``defer``: the 4xx on every attempt, so the message stays deferred until it expires
- ``block``: the operator's policy/reputation block (5xx)
- ``auth``: the operator's authentication failure (5xx, Gmail's ``5.7.26``)
- ``unknown``: user unknown (5xx)

``script()`` overrides this for one address with a list of kinds or :class:`Reply` objects (the
last one repeats). A host can also refuse at the greeting (GMX's ``554 ... black listed``, which
Postfix logs as ``status=deferred`` with ``refused to talk to me``), for every client IP or some.

Every answer that settles a recipient's attempt, and every greeting refusal, is recorded as a
:class:`SimEvent`: the ground truth a test compares Postfix's log (and the monitor) against.
Wording comes from /work/shared/reference/provider-replies.md; rows marked "composed" there, or
not found there, are models of the operator's style, not captured text.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser

KINDS = ("accept", "throttle", "defer", "block", "auth", "unknown")
_Send = Callable[[Sequence[str]], Awaitable[None]]  # writes one reply in a session


@dataclass(frozen=True)
class Reply:
    """One SMTP reply. ``lines`` hold the text after ``code-``/``code ``; ``{ip}``, ``{rcpt}``,
    ``{domain}``, ``{id}``, ``{host}`` and ``{sender_domain}`` are filled in per answer.
    ``stage`` says where a rejection is given: at ``RCPT TO`` or after the message (``end of
    DATA``). ``closes`` hangs up after the reply, as a real server does after a 421: Postfix
    then defers the rest of that transaction with ``lost connection with ... while sending
    ...`` (dsn 4.4.2), and the recipients cut off that way get no :class:`SimEvent`. Without it
    a 4xx stays one recipient's answer, so every recipient has its own ground truth."""

    code: int
    lines: tuple[str, ...]
    stage: str = "rcpt"
    closes: bool = False

    def render(self, values: Mapping[str, str]) -> tuple[str, ...]:
        """The reply's wire lines (without CRLF), continuation lines marked ``code-``."""
        texts = [line.format(**values) for line in self.lines]
        last = len(texts) - 1
        return tuple(f"{self.code}{'-' if i < last else ' '}{t}" for i, t in enumerate(texts))


def _r(code: int, *lines: str, stage: str = "rcpt") -> Reply:
    return Reply(code, lines, stage)


def _gmail(code: int, enhanced: str, *lines: str, stage: str = "rcpt") -> Reply:
    """Gmail style: the enhanced status code repeated at the start of every line."""
    return Reply(code, tuple(f"{enhanced} {line}" for line in lines), stage)


# "defer" is the "throttle" reply on every attempt unless an operator says otherwise
GMAIL = {
    "accept": _r(250, "2.0.0 OK  1764740000 {id} - gsmtp"),
    "throttle": _gmail(
        421,
        "4.7.28",
        "[{ip}      15] Our system has detected an unusual rate of",
        "unsolicited mail originating from your IP address. To protect our",
        "users from spam, mail sent from your IP address has been temporarily",
        "rate limited. For more information, go to",
        " https://support.google.com/mail/?p=UnsolicitedRateLimitError to",
        "review our Bulk Email Senders Guidelines. {id} - gsmtp",
    ),
    "block": _gmail(
        550,
        "5.7.1",
        "[{ip}      12] Our system has detected that this message is",
        "likely unsolicited mail. To reduce the amount of spam sent to Gmail,",
        "this message has been blocked. For more information, go to",
        " https://support.google.com/mail/?p=UnsolicitedMessageError {id} - gsmtp",
        stage="data",
    ),
    "auth": _gmail(
        550,
        "5.7.26",
        "This mail is unauthenticated, which poses a security risk to the",
        "sender and Gmail users, and has been blocked. The sender must",
        "authenticate with at least one of SPF or DKIM. For this message,",
        "DKIM checks did not pass and SPF check for [{sender_domain}] did not",
        "pass with ip: [{ip}]. To best protect our users from spam, the",
        "message has been blocked. For more information, go to",
        " https://support.google.com/mail/answer/81126#authentication {id} - gsmtp",
        stage="data",
    ),
    "unknown": _gmail(
        550,
        "5.1.1",
        "The email account that you tried to reach does not exist. Please try",
        "double-checking the recipient's email address for typos or",
        "unnecessary spaces. For more information, go to",
        " https://support.google.com/mail/?p=NoSuchUser {id} - gsmtp",
    ),
}
_NAM = " [{id}.eop-nam12.prod.protection.outlook.com]"  # Microsoft's trace: the answering host
_EUR = " [{id}.eop-eur02.prod.protection.outlook.com]"
MICROSOFT = {
    "accept": _r(
        250,
        "2.6.0 <{id}@{sender_domain}> [InternalId=1769526, Hostname={id}.namprd12.prod.outlook"
        ".com] 1642 bytes in 0.041, 38.975 KB/sec Queued mail for delivery",
    ),
    "throttle": _r(
        451,
        "4.7.650 The mail server [{ip}] has been temporarily rate limited due to IP reputation. "
        "For e-mail delivery information, see https://postmaster.live.com (S775)" + _NAM,
    ),
    "block": _r(
        550,
        "5.7.1 Unfortunately, messages from [{ip}] weren't sent. Please contact your Internet "
        "service provider since part of their network is on our block list (S3150). You can "
        "also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors." + _NAM,
    ),
    # composed: the catalogue has the 5.7.515 code but not its wording
    "auth": _r(
        550,
        "5.7.515 Access denied, sending domain {sender_domain} doesn't meet the required "
        "authentication level." + _NAM,
        stage="data",
    ),
    # composed: not in the catalogue
    "unknown": _r(550, "5.5.0 Requested action not taken: mailbox unavailable (S2017)." + _NAM),
}
MICROSOFT_365 = {
    **MICROSOFT,
    "block": _r(
        550,
        "5.7.606 Access denied, banned sending IP [{ip}]. To request removal from this list "
        "please visit https://sender.office.com/ and follow the directions. For more "
        "information please go to http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430)" + _EUR,
    ),
    # composed: not in the catalogue
    "unknown": _r(550, "5.4.1 Recipient address rejected: Access denied. AS(201806281)" + _EUR),
}
YAHOO = {
    "accept": _r(250, "ok dirdel"),
    "throttle": _r(
        421,
        "4.7.0 [TSS04] Messages from {ip} temporarily deferred due to unexpected volume or user "
        "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
    ),
    "block": _r(
        553,
        "5.7.2 [TSS06] All messages from {ip} will be permanently deferred; Retrying will NOT "
        "succeed. See https://postmaster.yahooinc.com/error-codes",
    ),
    "auth": _r(
        554,
        "5.7.9 Message not accepted for policy reasons.  See "
        "https://help.yahoo.com/kb/postmaster/SLN7253.html",
        stage="data",
    ),
    # no enhanced status code: Postfix logs dsn=5.0.0
    "unknown": _r(
        554, "delivery error: dd This user doesn't have a {domain} account ({rcpt}) [-5] - {id}"
    ),
}
_APPLE_POLICY = _r(
    554,
    "5.7.1 [CS01] Message rejected due to local policy. Please visit "
    "https://support.apple.com/en-us/HT204137",
    stage="data",
)
APPLE = {
    "accept": _r(250, "2.0.0 Ok: queued as {id}"),  # composed
    "throttle": _r(
        421,
        "4.7.1 Messages to {rcpt} deferred due to excessive volume. Try again later - "
        "https://support.apple.com/en-us/HT204137",
    ),
    "block": _APPLE_POLICY,
    "auth": _APPLE_POLICY,
    "unknown": _r(550, "5.1.1 <{rcpt}>: user does not exist"),  # composed
}
# Comcast answers without enhanced status codes (dsn 4.0.0 / 5.0.0 in the log)
_COMCAST = "resimta-po-10v.sys.comcast.net comcast {ip} "
COMCAST = {
    "accept": _r(250, "2.0.0 {id} mail accepted for delivery"),  # composed
    "throttle": _r(421, _COMCAST + "Too many sessions opened"),
    "block": _r(
        554,
        _COMCAST + "Comcast block for spam. Please see "
        "http://postmaster.comcast.net/smtp-error-codes.php#BL000000",
    ),
    "auth": _r(
        554,
        _COMCAST + "Comcast requires that all mail servers must have a PTR record with a valid "
        "Reverse DNS entry.",
    ),
    "unknown": _r(551, "5.1.1 <{rcpt}> recipient does not exist here."),  # composed
}
GMX = {
    "accept": _r(250, "Requested mail action okay, completed: id={id}"),
    "throttle": _r(421, "gmx.net (mxgmx117) Nemesis ESMTP Service temporarily not available"),
    "block": _r(554, "Transaction failed Reject due to policy restrictions."),
    "auth": _r(554, "Transaction failed Reject due to policy restrictions."),
    "unknown": _r(550, "Requested action not taken: mailbox unavailable"),
}
GMX_GREETING_BLOCK = _r(
    554,
    "gmx.net (mxgmx116) Nemesis ESMTP Service not available",
    "No SMTP service",
    "IP address is black listed.",
    "For explanation visit https://postmaster.gmx.net/en/error-messages?ip={ip}&c=bip",
)
# the sending domain's own MX: takes everything, including Postfix's bounce notifications
OWN = {kind: _r(250, "2.0.0 Ok: queued as {id}") for kind in KINDS}


@dataclass(frozen=True)
class MxHost:
    name: str
    operator: str
    replies: Mapping[str, Reply]
    greeting_block: Reply | None = None  # what a refused greeting says


HOSTS: tuple[MxHost, ...] = (
    MxHost("gmail-smtp-in.l.google.com", "gmail", GMAIL),
    MxHost("aspmx.l.google.com", "gmail", GMAIL),
    MxHost("outlook-com.olc.protection.outlook.com", "microsoft", MICROSOFT),
    MxHost("hotmail-com.olc.protection.outlook.com", "microsoft", MICROSOFT),
    MxHost("example-com.mail.protection.outlook.com", "microsoft", MICROSOFT_365),
    MxHost("mta5.am0.yahoodns.net", "yahoo", YAHOO),
    MxHost("mx-aol.mail.gm0.yahoodns.net", "yahoo", YAHOO),
    MxHost("mx01.mail.icloud.com", "apple", APPLE),
    MxHost("mx1a1.comcast.net", "comcast", COMCAST),
    MxHost("mx00.gmx.net", "gmx", GMX, GMX_GREETING_BLOCK),
    MxHost("mx.example.net", "own", OWN),
)
# recipient domain -> the MX host Postfix relays it to (via transport_maps)
DOMAIN_MX: dict[str, str] = {
    "gmail.com": "gmail-smtp-in.l.google.com",
    "googlemail.com": "gmail-smtp-in.l.google.com",
    "example.org": "aspmx.l.google.com",  # a Google Workspace customer
    "outlook.com": "outlook-com.olc.protection.outlook.com",
    "hotmail.com": "hotmail-com.olc.protection.outlook.com",
    "example.com": "example-com.mail.protection.outlook.com",  # a Microsoft 365 tenant
    "yahoo.com": "mta5.am0.yahoodns.net",
    "aol.com": "mx-aol.mail.gm0.yahoodns.net",
    "icloud.com": "mx01.mail.icloud.com",
    "me.com": "mx01.mail.icloud.com",
    "comcast.net": "mx1a1.comcast.net",
    "gmx.net": "mx00.gmx.net",
    "gmx.de": "mx00.gmx.net",
    "example.net": "mx.example.net",  # the sending domain: bounces to the sender land here
}


@dataclass(frozen=True)
class SimEvent:
    """One answer a simulator gave. ``final`` is True when it settles the recipient (2xx after
    the message, or 5xx at RCPT/DATA); a 4xx, or any refused greeting, is not final."""

    host: str  # the MX name this listener plays
    operator: str  # gmail, microsoft, yahoo, apple, comcast, gmx, own
    client_ip: str  # the sending IP Postfix connected from
    stage: str  # greeting | rcpt | data
    rcpt: str | None  # None for a refused greeting (the recipient is never said)
    attempt: int  # 1-based count of RCPT TO for this address (0 for a greeting)
    code: int
    text: str  # the reply flattened the way Postfix logs it
    final: bool
    mail_from: str | None = None  # "" for a bounce notification
    subject: str | None = None  # for answers after the message was received
    at: float = 0.0  # time.time()


@dataclass
class _Session:
    host: MxHost
    client_ip: str
    mail_from: str | None = None
    accepted: list[tuple[str, int, Reply]] = field(default_factory=list)


class OperatorSims:
    """All simulated MX hosts, served by one asyncio loop in a background thread."""

    def __init__(self, addresses: Mapping[str, str], hosts: Sequence[MxHost] = HOSTS) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.addresses = dict(addresses)  # MX name -> 127.0.0.x
        self.ports: dict[str, int] = {}
        self._lock = threading.Lock()
        self._events: list[SimEvent] = []
        self._attempts: dict[str, int] = {}
        self._scripts: dict[str, list[Reply | str]] = {}
        self._blocked: dict[str, frozenset[str] | None] = {}  # host -> client IPs (None: all)
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)

    async def _listen(self) -> None:
        for name in self.hosts:
            server = await asyncio.start_server(self._handler(name), self.addresses[name], 0)
            self._servers.append(server)
            self.ports[name] = int(server.sockets[0].getsockname()[1])

    def _handler(
        self, name: str
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)  # cancelled at stop(): no session outlives the simulator
            try:
                await self._session(name, reader, writer)
            except asyncio.CancelledError:
                pass  # stop(): ends quietly, so asyncio has no cancelled task to report
            finally:
                self._tasks.discard(task)

        return handle

    def stop(self) -> None:
        if not self._thread.is_alive():
            self._loop.close()
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    # -- scripting and ground truth ----------------------------------------------------------

    def reset(self) -> None:
        """Forget events, attempt counts and scripts; greeting blocks back to their defaults."""
        with self._lock:
            self._events.clear()
            self._attempts.clear()
            self._scripts.clear()
            self._blocked = {h.name: None for h in self.hosts.values() if h.greeting_block}

    def script(self, rcpt: str, answers: Iterable[Reply | str]) -> None:
        """What ``rcpt`` gets on attempt 1, 2, ...: kinds (``"throttle"``) or replies. The last
        answer repeats."""
        steps = list(answers)
        for step in steps:
            if isinstance(step, str) and step not in KINDS:
                raise ValueError(f"unknown kind {step!r}; one of {KINDS}")
        if not steps:
            raise ValueError("a script needs at least one answer")
        with self._lock:
            self._scripts[rcpt.lower()] = steps

    def block_greeting(self, host: str, client_ips: Iterable[str] | None = None) -> None:
        """``host`` refuses the greeting to ``client_ips`` (every client when None)."""
        if self.hosts[host].greeting_block is None:
            raise ValueError(f"{host} has no greeting refusal text")
        with self._lock:
            self._blocked[host] = None if client_ips is None else frozenset(client_ips)

    def unblock_greeting(self, host: str) -> None:
        with self._lock:
            self._blocked.pop(host, None)

    def events(self) -> list[SimEvent]:
        """Every recorded answer, in the order given."""
        with self._lock:
            return list(self._events)

    def attempts(self, rcpt: str) -> int:
        with self._lock:
            return self._attempts.get(rcpt.lower(), 0)

    # -- the SMTP conversation ---------------------------------------------------------------

    def _values(self, s: _Session, rcpt: str = "") -> dict[str, str]:
        sender = s.mail_from or ""
        return {
            "ip": s.client_ip,
            "rcpt": rcpt,
            "domain": rcpt.rpartition("@")[2],
            "host": s.host.name,
            "sender_domain": sender.rpartition("@")[2] or "unknown",
            "id": f"sim{next(self._ids):06d}",
        }

    def _record(
        self,
        s: _Session,
        stage: str,
        rcpt: str | None,
        attempt: int,
        lines: Sequence[str],
        subject: str | None = None,
    ) -> None:
        code = int(lines[0][:3])
        event = SimEvent(
            host=s.host.name,
            operator=s.host.operator,
            client_ip=s.client_ip,
            stage=stage,
            rcpt=rcpt,
            attempt=attempt,
            code=code,
            text=" ".join(lines),
            final=stage != "greeting" and code // 100 in (2, 5),
            mail_from=s.mail_from,
            subject=subject,
            at=time.time(),
        )
        with self._lock:
            self._events.append(event)

    def _answer_for(self, host: MxHost, rcpt: str, attempt: int) -> Reply:
        with self._lock:
            steps = self._scripts.get(rcpt.lower())
        if steps is None:
            local = rcpt.partition("@")[0].lower()
            kind = local.split("-", 1)[0].split("+", 1)[0].split(".", 1)[0]
            if kind == "throttle":
                steps = ["throttle", "accept"]
            else:
                steps = [kind if kind in KINDS else "accept"]
        step = steps[min(attempt, len(steps)) - 1]
        if isinstance(step, Reply):
            return step
        return host.replies.get(step) or host.replies["throttle"]  # "defer" may be "throttle"

    async def _session(
        self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host = self.hosts[name]
        s = _Session(host, str(writer.get_extra_info("peername")[0]))

        async def send(lines: Sequence[str]) -> None:
            writer.write("".join(f"{line}\r\n" for line in lines).encode())
            await writer.drain()

        try:
            if self._greeting_blocked(name, s.client_ip) and host.greeting_block:
                lines = host.greeting_block.render(self._values(s))
                self._record(s, "greeting", None, 0, lines)
                await send(lines)
                await self._refuse_all(reader, send)
                return
            await send([f"220 {name} ESMTP ready"])
            while line := await asyncio.wait_for(reader.readline(), timeout=60):
                if not await self._command(
                    s, line.decode("utf-8", "replace").strip(), reader, send
                ):
                    break
        except (TimeoutError, ConnectionError, ValueError):  # ValueError: an over-long line
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    def _greeting_blocked(self, host: str, client_ip: str) -> bool:
        with self._lock:
            if host not in self._blocked:
                return False
            ips = self._blocked[host]
        return ips is None or client_ip in ips

    async def _refuse_all(self, reader: asyncio.StreamReader, send: _Send) -> None:
        while line := await asyncio.wait_for(reader.readline(), timeout=30):
            if line.strip().upper() == b"QUIT":
                await send(["221 2.0.0 Bye"])
                return
            await send(["503 5.5.1 No SMTP service here"])

    async def _command(
        self, s: _Session, line: str, reader: asyncio.StreamReader, send: _Send
    ) -> bool:
        """Answers one command; False ends the session."""
        verb = line.split(" ", 1)[0].upper()
        if verb == "EHLO":
            await send(
                [
                    f"250-{s.host.name} at your service",
                    "250-SIZE 157286400",
                    "250-8BITMIME",
                    "250-ENHANCEDSTATUSCODES",
                    "250-PIPELINING",
                    "250 SMTPUTF8",
                ]
            )
        elif verb == "HELO":
            await send([f"250 {s.host.name}"])
        elif verb == "MAIL":
            s.mail_from, s.accepted = _address(line), []
            await send(["250 2.1.0 OK"])
        elif verb == "RCPT":
            return await self._rcpt(s, _address(line), send)
        elif verb == "DATA":
            return await self._data(s, reader, send)
        elif verb == "RSET":
            s.mail_from, s.accepted = None, []
            await send(["250 2.0.0 OK"])
        elif verb == "NOOP":
            await send(["250 2.0.0 OK"])
        elif verb == "QUIT":
            await send(["221 2.0.0 closing connection"])
            return False
        else:
            await send(["502 5.5.2 Command not recognized"])
        return True

    async def _rcpt(self, s: _Session, rcpt: str, send: _Send) -> bool:
        if s.mail_from is None:
            await send(["503 5.5.1 Need MAIL command"])
            return True
        with self._lock:
            attempt = self._attempts[rcpt.lower()] = self._attempts.get(rcpt.lower(), 0) + 1
        reply = self._answer_for(s.host, rcpt, attempt)
        if reply.code // 100 == 2 or reply.stage == "data":
            s.accepted.append((rcpt, attempt, reply))
            await send(["250 2.1.5 OK"])
            return True
        lines = reply.render(self._values(s, rcpt))
        self._record(s, "rcpt", rcpt, attempt, lines)
        await send(lines)
        return not reply.closes

    async def _data(self, s: _Session, reader: asyncio.StreamReader, send: _Send) -> bool:
        if not s.accepted:
            await send(["554 5.5.1 Error: no valid recipients"])
            return True
        await send(["354 Go ahead"])
        raw = bytearray()
        while (chunk := await asyncio.wait_for(reader.readline(), timeout=60)) != b".\r\n":
            if not chunk:
                raise ConnectionError("client went away during DATA")
            raw += chunk[1:] if chunk.startswith(b"..") else chunk
        subject = BytesHeaderParser().parsebytes(bytes(raw)).get("Subject")
        # one message, one answer: the first recipient scripted to fail after DATA fails them all
        rejects = [r for _, _, r in s.accepted if r.code // 100 != 2]
        rcpt0 = s.accepted[0][0]
        reply = rejects[0] if rejects else s.host.replies["accept"]
        lines = reply.render(self._values(s, rcpt0))
        for rcpt, attempt, _ in s.accepted:
            self._record(s, "data", rcpt, attempt, lines, None if subject is None else str(subject))
        s.mail_from, s.accepted = None, []
        await send(lines)
        return not reply.closes


def _address(line: str) -> str:
    """The address inside ``MAIL FROM:<...>`` / ``RCPT TO:<...>`` (empty for ``<>``)."""
    start, end = line.find("<"), line.find(">")
    if start < 0 or end < start:
        return line.partition(":")[2].strip()
    return line[start + 1 : end]
