"""A private Dovecot on loopback (per the shared recipe), and a fault-injecting TCP proxy.

The server runs once per test session from a temp dir; every test gets an empty mailbox. It
takes the password (PLAIN/LOGIN, passwd-file) and SASL XOAUTH2, whose tokens its ``oauth2``
passdb checks with the OAuth double's introspection endpoint (tests/servers/oauth.py). The
proxy forwards real bytes between the client and Dovecot, counts the IMAP commands the client
sends (round trips) and, when armed, cuts the connection the moment the client sends a chosen
command (``UID STORE`` by default): a connection dropped between FETCH and STORE, as on a flaky
production link, without touching the code under test.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from inboxops.config import ImapSettings, Secret
from tests.conftest import require

if TYPE_CHECKING:
    from tests.servers.oauth import OAuthDouble

# sbin may be missing from a CI job's PATH; the Debian package installs to /usr/sbin
DOVECOT = (
    shutil.which("dovecot")
    or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")
    or "dovecot"
)
USER = "dmarc"
PASSWORD = "imap-test-pw-Zq7"

CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
ssl = yes
ssl_cert = <{tmp}/cert.pem
ssl_key = <{tmp}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:{tmp}/mail/%u
mail_fsync = never
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {tmp}/users
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2
  args = {tmp}/oauth2.conf.ext
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {ssl_port}
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""

# Dovecot's oauth2 passdb asks the provider (RFC 7662 introspection) about every token shown
OAUTH2_CONF = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"dovecot did not listen on {port}")


@dataclass
class Dovecot:
    tmp: Path
    port: int  # plain IMAP, STARTTLS offered
    conf: Path
    ssl_port: int = 0  # implicit TLS (IMAPS), self-signed certificate

    def start(self) -> None:
        subprocess.run([DOVECOT, "-c", str(self.conf)], check=True)
        _wait_port(self.port)

    def stop(self) -> None:
        subprocess.run([DOVECOT, "-c", str(self.conf), "stop"], check=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    time.sleep(0.1)
            except OSError:
                return

    def settings(self, port: int | None = None, **overrides: object) -> ImapSettings:
        values: dict[str, object] = {
            "host": "127.0.0.1",
            "port": port or self.port,
            "user": USER,
            "password": Secret(PASSWORD),
            "security": "none",
            "timeout": 10.0,
        }
        values.update(overrides)
        return ImapSettings(**values)  # type: ignore[arg-type]

    def env(self, port: int | None = None) -> dict[str, str]:
        return {
            "INBOXOPS_IMAP_HOST": "127.0.0.1",
            "INBOXOPS_IMAP_PORT": str(port or self.port),
            "INBOXOPS_IMAP_USER": USER,
            "INBOXOPS_IMAP_PASSWORD": PASSWORD,
            "INBOXOPS_IMAP_SECURITY": "none",
        }

    # -- mailbox helpers (a separate stdlib client: the test's own eyes) ----------------------

    def client(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(USER, PASSWORD)
        return conn

    def append(self, message: bytes, *, flags: str = "", folder: str = "INBOX") -> None:
        conn = self.client()
        try:
            conn.create(f'"{folder}"')
            typ, _ = conn.append(f'"{folder}"', flags or None, None, message)
            assert typ == "OK"
        finally:
            conn.logout()

    def append_many(self, messages: list[bytes], *, folder: str = "INBOX") -> None:
        """Many messages in one command (MULTIAPPEND with LITERAL+, both Dovecot extensions):
        a 5,000-message mailbox in seconds, where one APPEND each takes a minute."""
        conn = self.client()
        try:
            conn.create(f'"{folder}"')
        finally:
            conn.logout()
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
            replies = sock.makefile("rb")
            replies.readline()  # greeting

            def command(line: bytes) -> None:
                sock.sendall(line)
                while True:
                    reply = replies.readline()
                    if reply.startswith(b"t "):
                        assert reply.startswith(b"t OK"), reply
                        return

            command(f"t LOGIN {USER} {PASSWORD}\r\n".encode())
            for start in range(0, len(messages), 500):
                parts = [f't APPEND "{folder}"'.encode()]
                parts += [b" {%d+}\r\n%s" % (len(m), m) for m in messages[start : start + 500]]
                command(b"".join(parts) + b"\r\n")
            command(b"t LOGOUT\r\n")

    def flags(self, folder: str = "INBOX") -> dict[str, set[str]]:
        """Message-ID -> flags of every message in ``folder``."""
        conn = self.client()
        out: dict[str, set[str]] = {}
        try:
            typ, _ = conn.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return out
            typ, data = conn.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            for item in data:
                if not isinstance(item, tuple):
                    continue
                meta, header = item
                flags = imaplib.ParseFlags(meta)
                message_id = header.decode().partition(":")[2].strip()
                out[message_id] = {f.decode() for f in flags}
        finally:
            conn.logout()
        return out

    def reset(self) -> None:
        conn = self.client()
        try:
            _typ, boxes = conn.list()
            for line in boxes or []:
                if not isinstance(line, bytes):
                    continue
                match = re.match(r'\(.*?\) (?:NIL|"[^"]*") (.*)$', line.decode())
                assert match, line
                name = match.group(1).strip('"')
                if name.upper() == "INBOX":
                    _, exists = conn.select("INBOX")
                    if exists and exists[0] and int(exists[0]) > 0:
                        conn.store("1:*", "+FLAGS", "(\\Deleted)")
                        conn.expunge()
                    conn.close()
                else:
                    conn.delete(f'"{name}"')
        finally:
            conn.logout()


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key (cert.pem, key.pem in ``directory``)."""
    require(shutil.which("openssl") is not None, "openssl is not installed (make services)")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="session")
def dovecot_server(oauth_server: OAuthDouble) -> Iterator[Dovecot]:
    require(Path(DOVECOT).exists(), "dovecot is not installed (run `make services` as root)")
    require(
        os.geteuid() == 0,
        "the Dovecot test server needs root (it switches to the dovecot user); run the suite "
        "as root or in CI (CONTRIBUTING.md)",
    )
    # Not pytest's tmp_path: its parents are mode 0700 and Dovecot's auth process (user
    # dovecot) must traverse to the passwd file.
    tmp = Path(tempfile.mkdtemp(prefix="inboxops-dovecot-"))
    entry = pwd.getpwnam("dovecot")
    for sub in ("run", "state", "mail"):
        (tmp / sub).mkdir()
    (tmp / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:::::\n")
    self_signed_cert(tmp)
    port, ssl_port = _free_port(), _free_port()
    conf = tmp / "dovecot.conf"
    conf.write_text(
        CONF.format(tmp=tmp, uid=entry.pw_uid, gid=entry.pw_gid, port=port, ssl_port=ssl_port)
    )
    (tmp / "oauth2.conf.ext").write_text(OAUTH2_CONF.format(url=oauth_server.introspection_url))
    os.chown(tmp / "mail", entry.pw_uid, entry.pw_gid)
    tmp.chmod(0o755)
    server = Dovecot(tmp, port, conf, ssl_port)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_server: Dovecot) -> Dovecot:
    """The session's Dovecot with an empty mailbox for this test."""
    dovecot_server.reset()
    return dovecot_server


# A command line as imaplib writes it: "<tag> <COMMAND> ..." (tags are 4 letters + a number)
_COMMAND = re.compile(rb"^[A-Z]{4}\d+ (UID [A-Z]+|[A-Z]+)")


class CuttingProxy:
    """Forwards 127.0.0.1:port to Dovecot, counting the client's IMAP commands; when armed,
    drops the connection on a chosen command (``UID STORE`` unless told otherwise)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.cuts_left = 0
        self.cuts = 0
        self.cut_command = "UID STORE"
        self.cut_after = 0  # let this many of cut_command through before cutting
        self.commands: list[str] = []  # every command the client sent, in order ("UID FETCH")
        self.lines: list[str] = []  # the same lines whole (LOGIN's arguments left out)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)

    def cut_on_store(self, times: int = 1) -> None:
        self.cut_on("UID STORE", times)

    def cut_on(self, command: str, times: int = 1, *, after: int = 0) -> None:
        """Drop the connection, instead of forwarding, the next ``times`` times ``command`` is
        sent (``"UID FETCH"``, ``"UID MOVE"``...), once ``after`` of them have gone through."""
        with self._lock:
            self.cut_command = command.upper()
            self.cuts_left = times
            self.cut_after = after

    def count(self, command: str | None = None, containing: str = "") -> int:
        """Commands sent so far (round trips), or only those named ``command`` whose line
        contains ``containing`` (``count("UID FETCH", "BODY.PEEK[]")``)."""
        with self._lock:
            return sum(
                1
                for name, line in zip(self.commands, self.lines, strict=True)
                if (command is None or name == command.upper()) and containing in line
            )

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst, inspect in ((client, upstream, True), (upstream, client, False)):
                t = threading.Thread(target=self._pump, args=(src, dst, inspect), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, inspect: bool) -> None:
        pending = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if inspect:
                    pending += data
                    *lines, pending = pending.split(b"\r\n")
                    if self._note(lines):
                        break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _note(self, lines: list[bytes]) -> bool:
        """Count the commands among ``lines``; True when one of them is to be cut."""
        cut = False
        with self._lock:
            for line in lines:
                match = _COMMAND.match(line)
                if match is None:
                    continue  # a continuation (AUTHENTICATE response, literal data)
                name = match.group(1).decode()
                self.commands.append(name)
                self.lines.append("LOGIN" if name == "LOGIN" else line.decode(errors="replace"))
                if name != self.cut_command or self.cuts_left <= 0:
                    continue
                if self.cut_after > 0:
                    self.cut_after -= 1
                    continue
                self.cuts_left -= 1
                self.cuts += 1
                cut = True
        return cut

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        with self._lock:
            for s in self._sockets:
                s.close()
        for t in self._threads:
            t.join(timeout=2)


@pytest.fixture
def imap_proxy(dovecot: Dovecot) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(dovecot.port)
    yield proxy
    proxy.close()
