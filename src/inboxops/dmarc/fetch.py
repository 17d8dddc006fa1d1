"""IMAP: read report mails, ingest them, flag (and archive) only what is committed.

The order of operations is the guarantee. A message is fetched with ``BODY.PEEK[]`` (reading
never marks it), every report in it is committed by :class:`Ingestor`, and only then is it
flagged ``\\Seen`` and, if an archive folder is set, moved. Whatever happens in between — a
crash, ``kill -9``, a dropped connection — the message is still unseen, and the next run
re-reads it and finds its reports already stored (``reports_known``): nothing lost, nothing
twice. Mail that is not a report is never touched.
"""

from __future__ import annotations

import base64
import imaplib
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inboxops.config import ImapSettings
from inboxops.dmarc.ingest import Ingestor, IngestStats
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

    def __init__(self, imap: ImapSettings) -> None:
        self.imap = imap
        self.where = f"{imap.host}:{imap.effective_port}"
        self.conn = self._connect()
        try:
            self.delimiter = self._delimiter()
            self.uidvalidity = self._select()
            self.can_move = "MOVE" in {c.upper() for c in self._capabilities()}
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
            conn.login(imap.user, imap.password.reveal())
        except imaplib.IMAP4.error:
            _close(conn)
            raise ImapError(
                f"IMAP login failed for user {imap.user} at {self.where}; check "
                "INBOXOPS_IMAP_USER / INBOXOPS_IMAP_PASSWORD"
            ) from None
        return conn

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

    def search(self, all_messages: bool) -> list[str]:
        typ, data = self.conn.uid("SEARCH", "ALL" if all_messages else "UNSEEN")
        if typ != "OK":
            raise ImapError(f"IMAP SEARCH failed in {self.imap.folder!r} at {self.where}")
        return data[0].decode().split() if data and data[0] else []

    def fetch(self, uid: str) -> bytes | None:
        typ, data = self.conn.uid("FETCH", uid, "(BODY.PEEK[])")
        if typ != "OK":
            raise imaplib.IMAP4.abort(f"FETCH {uid!r} failed")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None  # expunged meanwhile

    def flag_seen(self, uid: str) -> None:
        typ, _ = self.conn.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        if typ != "OK":
            raise imaplib.IMAP4.abort(f"STORE {uid!r} failed")

    def archive(self, uid: str, folder: str) -> None:
        mailbox = self.mailbox(folder)
        if self.can_move:
            typ, _ = self.conn.uid("MOVE", uid, mailbox)
            if typ == "OK":
                return
            self.conn.create(mailbox)
            typ, _ = self.conn.uid("MOVE", uid, mailbox)
            if typ != "OK":
                raise ImapError(f"cannot move messages to {folder!r} at {self.where}")
            return
        typ, _ = self.conn.uid("COPY", uid, mailbox)
        if typ != "OK":
            self.conn.create(mailbox)
            typ, _ = self.conn.uid("COPY", uid, mailbox)
            if typ != "OK":
                raise ImapError(f"cannot copy messages to {folder!r} at {self.where}")
        self.conn.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
        self.conn.expunge()

    def close(self) -> None:
        _close(self.conn)


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
    if not imap.allow_plaintext:
        raise ConfigError(
            f'[dmarc.imap] security = "none" would send the IMAP password in clear to '
            f"{imap.host}; use ssl or starttls, or set [dmarc.imap] allow_plaintext = true "
            "(INBOXOPS_IMAP_ALLOW_PLAINTEXT=true) if the network to it is trusted"
        )
    log.warning(
        "event=imap_plaintext host=%s warning=password_sent_in_clear "
        "setting=[dmarc.imap].allow_plaintext",
        imap.host,
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
) -> FetchStats:
    """Ingest the folder's UNSEEN (or all) messages; flag/move each only after its commit."""
    check_plaintext(imap)
    stats = FetchStats()
    session = _Session(imap)
    try:
        uids = session.search(all_messages)
        total = len(uids)
        log.info("event=imap_search folder=%s messages=%d", imap.folder, total)
        done = 0
        while uids:
            uid = uids[0]
            try:
                _one(session, uid, ingestor, stats, imap, dry_run)
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
                session = _Session(imap)
                if previous is not None and session.uidvalidity != previous:
                    uids = session.search(all_messages)  # UIDs changed meaning: start over
                continue
            uids.pop(0)
            done += 1
            if progress is not None:
                progress(done, total)
    finally:
        session.close()
    return stats


def _one(
    session: _Session,
    uid: str,
    ingestor: Ingestor,
    stats: FetchStats,
    imap: ImapSettings,
    dry_run: bool,
) -> None:
    raw = session.fetch(uid)
    if raw is None:
        return
    source = f"imap:{imap.folder}/uid={uid}"
    result = ingestor.ingest_bytes(raw, source)  # commits before returning
    stats.messages_seen += 1
    stats.ingest.add(result)
    if not result.stored_anything:
        stats.messages_skipped_not_report += 1
        return
    if dry_run:
        return
    session.flag_seen(uid)
    stats.messages_flagged += 1
    log.info("event=imap_flagged uid=%s", uid)
    if imap.archive_folder:
        session.archive(uid, imap.archive_folder)
        stats.messages_moved += 1
