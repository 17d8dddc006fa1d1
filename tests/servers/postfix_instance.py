"""One private Postfix instance for the test fleet (tests/servers/postfix.py): its config,
queue and data directories in a temp dir, started, reloaded and stopped with Postfix's own
commands, mail handed to its smtpd or to ``sendmail -C``, its queue read with ``postqueue -j``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

SBIN = "/usr/sbin:/usr/local/sbin"  # a CI job's PATH may lack sbin, where Postfix lives
POSTFIX = shutil.which("postfix") or shutil.which("postfix", path=SBIN) or "/usr/sbin/postfix"
_BIN = Path(POSTFIX).parent


def _tool(name: str) -> str:
    return str(_BIN / name) if (_BIN / name).exists() else shutil.which(name, path=SBIN) or name


SENDER_DOMAIN = "example.net"  # ours: its MX is a simulator that accepts everything
INSTANCES = {"out05": "127.0.0.5", "out07": "127.0.0.7"}  # instance -> smtp_bind_address
MX_BASE = 20  # MX hosts live on 127.0.0.20, .21, ...

MAIN_CF = """\
# One private test instance, written by tests/servers/postfix_instance.py
compatibility_level = 3.6
config_directory = {conf}
queue_directory = {queue}
data_directory = {data}
maillog_file = {log}
maillog_file_prefixes = {root}
syslog_name = postfix-{name}
myhostname = {name}.{domain}
mydomain = {domain}
myorigin = $mydomain
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost =
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP
smtp_bind_address = {bind_ip}
smtp_tls_security_level = none
smtp_dns_support_level = disabled
smtp_host_lookup = native
transport_maps = texthash:{conf}/transport
default_transport = error:5.1.2 no operator simulator for this domain (tests/servers/smtp_sim.py)
# retries only when a test flushes; expire_deferred() lowers the lifetimes for one queue run
queue_run_delay = 1h
minimal_backoff_time = 1h
maximal_backoff_time = 1h
maximal_queue_lifetime = 5d
bounce_queue_lifetime = 5d
notify_classes =
biff = no
append_dot_mydomain = no
"""
# smtp is chrooted in the queue directory so that it resolves MX names through queue/etc/hosts
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n  -  n  60     1  pickup
cleanup   unix  n  -  n  -      0  cleanup
qmgr      unix  n  -  n  300    1  qmgr
rewrite   unix  -  -  n  -      -  trivial-rewrite
bounce    unix  -  -  n  -      0  bounce
defer     unix  -  -  n  -      0  bounce
trace     unix  -  -  n  -      0  bounce
verify    unix  -  -  n  -      1  verify
flush     unix  n  -  n  1000?  0  flush
proxymap  unix  -  -  n  -      -  proxymap
smtp      unix  -  -  y  -      -  smtp
showq     unix  n  -  n  -      -  showq
error     unix  -  -  n  -      -  error
retry     unix  -  -  n  -      -  error
discard   unix  -  -  n  -      -  discard
anvil     unix  -  -  n  -      1  anvil
scache    unix  -  -  n  -      1  scache
postlog   unix-dgram n - n - 1  postlogd
"""


@dataclass(frozen=True)
class QueuedMessage:
    """One message still in a queue (``postqueue -j``)."""

    instance: str
    queue_name: str  # maildrop, incoming, active, deferred, hold
    queue_id: str
    sender: str
    recipients: tuple[tuple[str, str], ...]  # (address, delay reason)


def _run(*args: str, check: bool = True) -> str:
    # Files, not pipes: ``postfix start`` leaves the master and ``reload`` a postsuper running
    # with our stdio, and waiting for a pipe's end would wait for them (2 s per command).
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        done = subprocess.run(args, stdout=out, stderr=err, check=False, timeout=30)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {stderr.strip()}")
    return stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostfixInstance:
    """One Postfix with its own config directory, queue, syslog name and sending IP."""

    def __init__(self, name: str, bind_ip: str, root: Path, log_path: Path) -> None:
        self.name = name
        self.syslog_name = f"postfix-{name}"
        self.bind_ip = bind_ip
        self.myhostname = f"{name}.{SENDER_DOMAIN}"
        self.config_dir = root / name / "conf"
        self.queue_dir = root / name / "queue"
        self.data_dir = root / name / "data"
        self.log_path = log_path
        self.root = root
        self.smtpd_port = 0

    def configure(self, transport: str, hosts: str) -> None:
        for d in (self.config_dir, self.queue_dir / "etc", self.data_dir):
            d.mkdir(parents=True)
        shutil.chown(self.data_dir, "postfix", "postfix")
        self.smtpd_port = _free_port()
        self.configure_main()
        self._write("master.cf", MASTER_CF.format(port=self.smtpd_port))
        self._write("transport", transport)
        (self.queue_dir / "etc" / "hosts").write_text(hosts)
        for name in ("localtime", "services", "nsswitch.conf"):  # as Debian fills its chroot
            src = Path("/etc") / name
            if src.exists():
                shutil.copyfile(src, self.queue_dir / "etc" / name)

    def configure_main(self) -> None:
        """(Re)writes main.cf with the fleet's settings."""
        self._write(
            "main.cf",
            MAIN_CF.format(
                conf=self.config_dir,
                queue=self.queue_dir,
                data=self.data_dir,
                log=self.log_path,
                root=self.root,
                name=self.name,
                domain=SENDER_DOMAIN,
                bind_ip=self.bind_ip,
            ),
        )

    def _write(self, name: str, text: str) -> None:
        (self.config_dir / name).write_text(text)
        self._backdate(name)

    def _backdate(self, name: str) -> None:
        """Postfix re-reads a file changed within the last second every 0.3 s until it is a
        second old (a guard against half-written files): an old mtime saves 1.5 s per start."""
        old = time.time() - 60
        os.utime(self.config_dir / name, (old, old))

    # -- control -----------------------------------------------------------------------------

    def postfix(self, command: str) -> None:
        _run(POSTFIX, "-c", str(self.config_dir), command)

    def master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """``postfix abort`` (the SIGTERM to the master that ``postfix stop`` sends, without its
        one-second polling), then waits until the master and every child it had are gone;
        SIGKILL to any of those that linger."""
        pid = self.master_pid()
        if pid is None or not _alive(pid):
            return
        processes = [pid, *_children(pid)]
        _run(POSTFIX, "-c", str(self.config_dir), "abort", check=False)
        for p in processes:
            if not _wait_gone(p, 10):
                os.kill(p, signal.SIGKILL)
                _wait_gone(p, 5)

    def set_params(self, params: Mapping[str, str]) -> None:
        """``postconf -e`` these main.cf parameters, then ``postfix reload``."""
        _run(
            _tool("postconf"),
            "-c",
            str(self.config_dir),
            "-e",
            *(f"{k}={v}" for k, v in params.items()),
        )
        self._backdate("main.cf")
        self.postfix("reload")

    def param(self, name: str) -> str:
        """A main.cf parameter's value (``postconf -h``)."""
        return _run(_tool("postconf"), "-c", str(self.config_dir), "-h", name).strip()

    def flush(self) -> None:
        """``postqueue -f``: retry every deferred message now, and forget dead destinations."""
        _run(_tool("postqueue"), "-c", str(self.config_dir), "-f")

    def kick(self) -> None:
        """Wake qmgr to scan ``incoming``: a trigger sent while it restarted (a reload) is
        lost, and this qmgr wakes by itself only every 300 s (master.cf)."""
        _run(_tool("postkick"), "-c", str(self.config_dir), "public", "qmgr", "I", check=False)

    def delete_all(self) -> None:
        _run(_tool("postsuper"), "-c", str(self.config_dir), "-d", "ALL", check=False)

    def queue(self) -> list[QueuedMessage]:
        out = _run(_tool("postqueue"), "-c", str(self.config_dir), "-j")
        messages = []
        for line in out.splitlines():
            item = json.loads(line)
            messages.append(
                QueuedMessage(
                    instance=self.name,
                    queue_name=item["queue_name"],
                    queue_id=item["queue_id"],
                    sender=item["sender"],
                    recipients=tuple(
                        (r["address"], r.get("delay_reason", "")) for r in item["recipients"]
                    ),
                )
            )
        return messages

    # -- mail in -----------------------------------------------------------------------------

    def send(
        self,
        sender: str,
        recipients: Sequence[str],
        *,
        subject: str = "Test message",
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Hands one message to this instance's smtpd, as listmonk does; returns its queue ID.
        Raises ValueError when Postfix refuses it (an unmapped recipient domain, say)."""
        msg = _message(sender, recipients, subject, headers)
        with smtplib.SMTP("127.0.0.1", self.smtpd_port, timeout=30) as smtp:
            smtp.ehlo("listmonk.example.net")
            for command, arg in (("mail", sender), *(("rcpt", r) for r in recipients)):
                code, reply = getattr(smtp, command)(arg)
                if code != 250:
                    raise ValueError(f"{self.syslog_name} refused {arg!r}: {code} {reply!r}")
            code, reply = smtp.data(msg)
            if code != 250:
                raise ValueError(f"{self.syslog_name} refused the message: {code} {reply!r}")
        match = re.search(rb"queued as ([0-9A-Za-z]+)", reply)
        if match is None:
            raise ValueError(f"no queue ID in {reply!r}")
        return match.group(1).decode()

    def sendmail(
        self,
        sender: str,
        recipients: Sequence[str],
        *,
        subject: str = "Test message",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Injects one message with ``sendmail -C`` (postdrop, then pickup: ``uid=0`` lines)."""
        msg = _message(sender, recipients, subject, headers)
        args = [_tool("sendmail"), "-C", str(self.config_dir), "-i", "-f", sender, "--"]
        subprocess.run([*args, *recipients], input=msg, check=True, timeout=30)


def _message(
    sender: str, recipients: Sequence[str], subject: str, headers: Mapping[str, str] | None
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender or f"MAILER-DAEMON@{SENDER_DOMAIN}"
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or SENDER_DOMAIN)
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content("Hello from the inboxops test fleet.\n")
    return msg.as_bytes()


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for init to reap it has stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False
