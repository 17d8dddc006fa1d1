"""IMAP: read report mails in batches, ingest them, flag (and archive) only what is committed.

The order of operations is the guarantee. Messages are read with ``BODY.PEEK[]`` (reading
never marks them), every report in them is committed by :class:`Ingestor`, and only then are
they flagged ``\\Seen`` and, if an archive folder is set, moved. Whatever happens in between — a
crash, ``kill -9``, a dropped connection — the messages are still unseen, and the next run
re-reads them and finds their reports already stored (``reports_known``): nothing lost, nothing
twice. Mail that is not a report is never touched.

Reading, flagging and moving go by UID *sets*, a batch at a time (:mod:`.imap_batch`): sizes
first (``RFC822.SIZE``), then one ``UID FETCH`` per batch bounded by message count and bytes,
one ``UID STORE`` and one ``UID MOVE`` for the batch's committed messages. A 5,000-message
backfill is a few dozen round trips instead of 15,000, and memory is bounded by the batch.

The login is the password, or with ``auth = "xoauth2"`` an OAuth2 access token (SASL XOAUTH2,
:mod:`.oauth`) renewed before it runs out, so a reconnect late in a long run still gets in.
"""

from __future__ import annotations

import base64
import imaplib
import logging
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from inboxops.config import ImapSettings
from inboxops.dmarc.imap_batch import BatchLimits, parse_bodies, parse_sizes, plan_batch, uid_sets
from inboxops.dmarc.ingest import Ingestor, IngestStats
from inboxops.dmarc.oauth import AccessTokens, access_tokens, check_oauth, xoauth2_response
from inboxops.errors import ConfigError, ImapError

log = logging.getLogger(__name__)

_DROPPED = (imaplib.IMAP4.abort, OSError, EOFError, socket.timeout)
_LIST_DELIM = re.compile(rb'^\(.*?\) "(.)"')


@dataclass
class FetchStats:
    ingest: IngestStats = field(default_factory=IngestStats)
    messages_seen: int = 0
    messages_flagged: int = 0
    messages_moved: int = 0
    messages_skipped_not_report: int = 0
    reconnects: int = 0

    def as_json(self) -> dict[str, Any]:
        out = self.ingest.as_json()
        out.update(
            messages_seen=self.messages_seen,
            messages_flagged=self.messages_flagged,
            messages_moved=self.messages_moved,
            messages_skipped_not_report=self.messages_skipped_not_report,
            reconnects=self.reconnects,
        )
        return out


def utf7_mailbox(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3): "Prüfung" -> "Pr&APw-fung"."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def _quote(mailbox: str) -> str:
    encoded = utf7_mailbox(mailbox)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Session:
    """One logged-in IMAP connection with the folder selected."""

    def __init__(
        self, imap: ImapSettings, tokens: AccessTokens | None, limits: BatchLimits
    ) -> None:
        self.imap = imap
        self.tokens = tokens
        self.limits = limits
        self.where = f"{imap.host}:{imap.effective_port}"
        self.conn = self._connect()
        try:
            self.delimiter = self._delimiter()
            self.uidvalidity = self._select()
            capabilities = {c.upper() for c in self._capabilities()}
            self.can_move = "MOVE" in capabilities
            self.uidplus = "UIDPLUS" in capabilities
        except BaseException:
            _close(self.conn)
            raise

    def _connect(self) -> imaplib.IMAP4:
        imap = self.imap
        try:
            if imap.security == "ssl":
                context = ssl.create_default_context()
                if not imap.verify_tls:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    imap.host, imap.effective_port, ssl_context=context, timeout=imap.timeout
                )
            else:
                conn = imaplib.IMAP4(imap.host, imap.effective_port, timeout=imap.timeout)
                if imap.security == "starttls":
                    if "STARTTLS" not in conn.capabilities:
                        conn.shutdown()
                        raise ImapError(
                            f"IMAP server {self.where} does not offer STARTTLS; use "
                            "INBOXOPS_IMAP_SECURITY=ssl, or none only on a trusted network"
                        )
                    context = ssl.create_default_context()
                    if not imap.verify_tls:
                        context.check_hostname = False
                        context.verify_mode = ssl.CERT_NONE
                    conn.starttls(ssl_context=context)
        except ImapError:
            raise
        except ssl.SSLError as exc:
            raise ImapError(
                f"TLS with IMAP server {self.where} failed ({exc.reason}); check "
                "INBOXOPS_IMAP_SECURITY and the server certificate"
            ) from None
        except (OSError, imaplib.IMAP4.error) as exc:
            raise ImapError(
                f"cannot connect to IMAP server {self.where} ({type(exc).__name__}: {exc}); "
                "check INBOXOPS_IMAP_HOST, INBOXOPS_IMAP_PORT and INBOXOPS_IMAP_SECURITY"
            ) from None
        try:
            if imap.auth == "xoauth2":
                self._xoauth2(conn)
            else:
                conn.login(imap.user, imap.password.reveal())
        except imaplib.IMAP4.error:
            _close(conn)
            raise ImapError(
                f"IMAP login failed for user {imap.user} at {self.where}; check "
                "INBOXOPS_IMAP_USER / INBOXOPS_IMAP_PASSWORD"
            ) from None
        except BaseException:
            _close(conn)
            raise
        return conn

    def _xoauth2(self, conn: imaplib.IMAP4) -> None:
        """SASL XOAUTH2 with the current token; a token refused before its time (revoked
        early, a skewed clock) is replaced once. A token just issued and still refused means
        the app may not open this mailbox: no use asking again."""
        tokens = self.tokens
        assert tokens is not None  # fetch_reports makes one for auth = "xoauth2"
        for _ in range(2):
            token, fresh = tokens.get()
            try:
                conn.authenticate("XOAUTH2", _sasl(xoauth2_response(self.imap.user, token)))
                return
            except imaplib.IMAP4.abort:
                raise  # the connection went away: not a verdict on the token
            except imaplib.IMAP4.error:
                if fresh:
                    break
                log.info("event=oauth_token_refused provider=%s action=renew", tokens.label)
                tokens.invalidate()
        raise ImapError(
            f"IMAP server {self.where} refused the OAuth2 token ({tokens.label}) for user "
            f"{self.imap.user}; check that the app may open this mailbox (Microsoft: "
            "IMAP.AccessAsApp and a mailbox permission for its service principal; Google: "
            "scope https://mail.google.com/) and INBOXOPS_IMAP_USER"
        )

    def _delimiter(self) -> str:
        """The server's hierarchy separator ("." on Maildir++ Dovecot, "/" on many others)."""
        typ, data = self.conn.list('""', '""')
        if typ == "OK" and data and isinstance(data[0], bytes):
            match = _LIST_DELIM.match(data[0])
            if match:
                return match.group(1).decode()
        return "/"

    def mailbox(self, name: str) -> str:
        """A configured folder path ("DMARC/Processed") in the server's own spelling."""
        if self.delimiter and self.delimiter != "/":
            name = name.replace("/", self.delimiter)
        return _quote(name)

    def _capabilities(self) -> list[str]:
        typ, data = self.conn.capability()
        if typ != "OK" or not data or not data[0]:
            return []
        raw = data[0]
        return (raw.decode() if isinstance(raw, bytes) else str(raw)).split()

    def _select(self) -> int | None:
        typ, _ = self.conn.select(self.mailbox(self.imap.folder))
        if typ != "OK":
            raise ImapError(
                f"IMAP folder {self.imap.folder!r} cannot be opened at {self.where}; "
                "check INBOXOPS_IMAP_FOLDER"
            )
        _, values = self.conn.response("UIDVALIDITY")
        try:
            return int(values[0]) if values and values[0] else None
        except (TypeError, ValueError):
            return None

    def search(self, all_messages: bool) -> list[int]:
        typ, data = self.conn.uid("SEARCH", "ALL" if all_messages else "UNSEEN")
        if typ != "OK":
            raise ImapError(f"IMAP SEARCH failed in {self.imap.folder!r} at {self.where}")
        found = data[0].split() if data and isinstance(data[0], bytes) else []
        return sorted(int(uid) for uid in found)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        """RFC822.SIZE of each message; a UID missing from the answer was expunged."""
        out: dict[int, int] = {}
        for chunk in uid_sets(uids, self.limits.max_set_chars):
            typ, data = self.conn.uid("FETCH", chunk, "(RFC822.SIZE)")
            if typ != "OK":
                raise imaplib.IMAP4.abort("FETCH RFC822.SIZE failed")
            out.update(parse_sizes(data))
        wanted = set(uids)
        return {uid: size for uid, size in out.items() if uid in wanted}

    def bodies(self, uids: list[int]) -> dict[int, bytes]:
        """The messages of one batch, read without marking them (``BODY.PEEK[]``)."""
        out: dict[int, bytes] = {}
        for chunk in uid_sets(uids, self.limits.max_set_chars):
            typ, data = self.conn.uid("FETCH", chunk, "(BODY.PEEK[])")
            if typ != "OK":
                raise imaplib.IMAP4.abort("FETCH BODY.PEEK[] failed")
            out.update(parse_bodies(data))
            del data
        wanted = set(uids)
        return {uid: raw for uid, raw in out.items() if uid in wanted}

    def flag_seen(self, uids: list[int]) -> None:
        for chunk in uid_sets(uids, self.limits.max_set_chars):
            typ, _ = self.conn.uid("STORE", chunk, "+FLAGS.SILENT", "(\\Seen)")
            if typ != "OK":
                raise imaplib.IMAP4.abort("STORE \\Seen failed")

    def archive(self, uids: list[int], folder: str) -> None:
        mailbox = self.mailbox(folder)
        for chunk in uid_sets(uids, self.limits.max_set_chars):
            if self.can_move:
                self._transfer("MOVE", chunk, mailbox, folder)
            else:
                self._transfer("COPY", chunk, mailbox, folder)
                self.conn.uid("STORE", chunk, "+FLAGS.SILENT", "(\\Deleted)")
                if self.uidplus:
                    self.conn.uid("EXPUNGE", chunk)  # only ours, not others' \Deleted mail
                else:
                    self.conn.expunge()
            self.conn.response("EXPUNGE")  # drop the untagged EXPUNGEs imaplib would keep

    def _transfer(self, command: str, chunk: str, mailbox: str, folder: str) -> None:
        """UID MOVE/COPY, creating the folder the first time it is missing."""
        typ, _ = self.conn.uid(command, chunk, mailbox)
        if typ == "OK":
            return
        self.conn.create(mailbox)
        typ, _ = self.conn.uid(command, chunk, mailbox)
        if typ != "OK":
            verb = "move" if command == "MOVE" else "copy"
            raise ImapError(f"cannot {verb} messages to {folder!r} at {self.where}")

    def close(self) -> None:
        _close(self.conn)


def _sasl(initial: bytes) -> Callable[[bytes], bytes]:
    """imaplib's AUTHENTICATE callback: the initial response to the server's empty challenge;
    to anything after it (XOAUTH2's error details) an empty line, so the server ends with NO."""
    sent = False

    def respond(_challenge: bytes) -> bytes:
        nonlocal sent
        if sent:
            return b""
        sent = True
        return initial

    return respond


def _close(conn: imaplib.IMAP4) -> None:
    try:
        conn.logout()
    except Exception:  # already gone: nothing to release but the socket
        try:
            conn.shutdown()
        except Exception:
            log.debug("event=imap_close_failed")


def check_plaintext(imap: ImapSettings) -> None:
    """Refuse to send the password in clear to another machine unless told to, then warn.

    ``security = "none"`` is meant for a Dovecot on loopback; pointed at a real host it would
    hand the mailbox password to anyone on the path, so it needs ``allow_plaintext = true``
    and is logged as a warning on every run (cron mails it).
    """
    if imap.security != "none" or imap.loopback:
        return
    secret = "OAuth access token" if imap.auth == "xoauth2" else "password"
    if not imap.allow_plaintext:
        raise ConfigError(
            f'[dmarc.imap] security = "none" would send the IMAP {secret} in clear to '
            f"{imap.host}; use ssl or starttls, or set [dmarc.imap] allow_plaintext = true "
            "(INBOXOPS_IMAP_ALLOW_PLAINTEXT=true) if the network to it is trusted"
        )
    log.warning(
        "event=imap_plaintext host=%s warning=%s_sent_in_clear "
        "setting=[dmarc.imap].allow_plaintext",
        imap.host,
        "token" if imap.auth == "xoauth2" else "password",
    )


def check_login(imap: ImapSettings) -> None:
    """Refuse to start without what the configured login needs (exit 2, the key to set)."""
    if imap.auth == "xoauth2":
        if not imap.user:
            raise ConfigError(
                "IMAP user missing: the mailbox to open with the OAuth2 token; set "
                "INBOXOPS_IMAP_USER or [dmarc.imap] user"
            )
        check_oauth(imap)
    elif not imap.user or not imap.password:
        raise ConfigError(
            "IMAP credentials missing; set INBOXOPS_IMAP_USER and INBOXOPS_IMAP_PASSWORD "
            "(or [dmarc.imap] user and password / password_file)"
        )


def fetch_reports(
    imap: ImapSettings,
    ingestor: Ingestor,
    *,
    all_messages: bool = False,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    max_reconnects: int = 5,
    sleep: Callable[[float], None] = time.sleep,
    tokens: AccessTokens | None = None,
    limits: BatchLimits | None = None,
) -> FetchStats:
    """Ingest the folder's UNSEEN (or all) messages; flag/move them only after their commit.

    ``tokens`` (for ``auth = "xoauth2"``) is made from the settings unless given: a caller
    that logs in repeatedly, or a test with its own clock, passes one.
    """
    check_plaintext(imap)
    check_login(imap)
    if imap.auth == "xoauth2" and tokens is None:
        tokens = access_tokens(imap)
    limits = limits or BatchLimits()
    stats = FetchStats()
    run = _Run(imap, ingestor, stats, limits, dry_run=dry_run, progress=progress)
    session = _Session(imap, tokens, limits)
    try:
        run.restart(session.search(all_messages))
        log.info("event=imap_search folder=%s messages=%d", imap.folder, run.total)
        while True:
            try:
                if not run.step(session):
                    break
            except _DROPPED as exc:
                if stats.reconnects >= max_reconnects:
                    raise ImapError(
                        f"IMAP connection to {session.where} kept dropping "
                        f"({stats.reconnects} reconnects); rerun later, nothing was lost"
                    ) from None
                stats.reconnects += 1
                log.warning(
                    "event=imap_reconnect attempt=%d error=%s", stats.reconnects, type(exc).__name__
                )
                session.close()
                sleep(min(2.0 ** (stats.reconnects - 1), 30.0))
                previous = session.uidvalidity
                session = _Session(imap, tokens, limits)
                if previous is not None and session.uidvalidity != previous:
                    run.restart(session.search(all_messages))  # UIDs changed meaning: start over
    finally:
        session.close()
    return stats


class _Run:
    """Where one fetch stands: what is left to read, what is committed but not yet flagged.

    It survives reconnects: with the same UIDVALIDITY the UIDs keep their meaning, so messages
    committed before the drop are flagged (and moved) without being read again.
    """

    def __init__(
        self,
        imap: ImapSettings,
        ingestor: Ingestor,
        stats: FetchStats,
        limits: BatchLimits,
        *,
        dry_run: bool,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.imap = imap
        self.ingestor = ingestor
        self.stats = stats
        self.limits = limits
        self.dry_run = dry_run
        self.progress = progress
        self.pending: deque[int] = deque()  # to read, in UID order
        self.sizes: dict[int, int] = {}
        self.to_flag: list[int] = []  # committed, not yet \Seen
        self.to_move: list[int] = []  # \Seen, not yet in the archive folder
        self.done = 0
        self.total = 0

    def restart(self, uids: list[int]) -> None:
        """Start from a SEARCH. After a UIDVALIDITY change nothing known holds any more:
        committed but unflagged messages are simply read again and found known."""
        self.pending = deque(uids)
        self.sizes.clear()
        self.to_flag.clear()
        self.to_move.clear()
        self.total = self.done + len(uids)

    def step(self, session: _Session) -> bool:
        """Read, ingest and flag one batch; False once nothing is left."""
        self.settle(session)
        batch = self._next_batch(session)
        if not batch:
            return False
        cap = self.ingestor.limits.max_input_bytes
        too_big = {uid for uid in batch if self.sizes.get(uid, 0) > cap}  # refused unread
        wanted = [uid for uid in batch if uid not in too_big]
        bodies = session.bodies(wanted) if wanted else {}
        log.info(
            "event=imap_batch messages=%d bytes=%d", len(batch), sum(map(len, bodies.values()))
        )
        results: list[tuple[int, IngestStats]] = []
        # The batch's small reports are written in one transaction at the end of the session
        # (a commit per mail was most of a backfill's database time); the mails are counted,
        # and flagged, only once it has committed.
        with self.ingestor.sink.session():
            for uid in batch:
                source = f"imap:{self.imap.folder}/uid={uid}"
                if uid in too_big:  # refused unread: quarantined at once
                    log.warning("event=imap_oversize uid=%d bytes=%d", uid, self.sizes[uid])
                    results.append((uid, self.ingestor.refuse_unread(source, self.sizes[uid])))
                raw = bodies.pop(uid, None)  # released as it goes: memory shrinks with the batch
                if raw is not None:
                    results.append((uid, self.ingestor.ingest_bytes(raw, source, commit=False)))
                self.pending.popleft()
                self.sizes.pop(uid, None)
                self.done += 1
                if self.progress is not None:
                    self.progress(self.done, self.total)
        for uid, result in results:
            self._account(uid, result)
        self.settle(session)
        return bool(self.pending)

    def settle(self, session: _Session) -> None:
        """Flag, then move, what is committed: only ever after the commit."""
        if self.to_flag:
            session.flag_seen(self.to_flag)
            self.stats.messages_flagged += len(self.to_flag)
            log.info("event=imap_flagged messages=%d", len(self.to_flag))
            if self.imap.archive_folder:
                self.to_move.extend(self.to_flag)
            self.to_flag = []
        if self.to_move:
            session.archive(self.to_move, self.imap.archive_folder)
            self.stats.messages_moved += len(self.to_move)
            self.to_move = []

    def _next_batch(self, session: _Session) -> list[int]:
        """The next batch, its sizes known (asked for a window of UIDs at a time)."""
        window = max(self.limits.size_window, self.limits.messages)
        while True:
            head = list(islice(self.pending, self.limits.messages))
            unknown = [uid for uid in islice(self.pending, window) if uid not in self.sizes]
            if not head or all(uid in self.sizes for uid in head):
                return plan_batch(head, self.sizes, self.limits)
            self.sizes.update(session.sizes(unknown))
            gone = {uid for uid in unknown if uid not in self.sizes}  # expunged meanwhile
            if gone:
                self.pending = deque(uid for uid in self.pending if uid not in gone)
                self.done += len(gone)

    def _account(self, uid: int, result: IngestStats) -> None:
        self.stats.messages_seen += 1
        self.stats.ingest.add(result)
        if not result.stored_anything:
            self.stats.messages_skipped_not_report += 1
        elif not self.dry_run:
            self.to_flag.append(uid)
