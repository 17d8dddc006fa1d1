"""Two real Postfix instances that write genuine logs, relaying to loopback operator simulators.

Follows /work/shared/recipes/postfix-test-mta.md, but nothing outside a temp dir is touched:
each instance (``postfix-out05`` sending from 127.0.0.5, ``postfix-out07`` from 127.0.0.7) has
its own config directory, queue and data directory, and both write one ``maillog`` through
postlogd, the way a fleet's syslog file interleaves its instances. There is no listener on
port 25: mail comes in through an smtpd on a free 127.0.0.1 port (the way listmonk hands mail
to Postfix) or through ``sendmail -C``.

smtp(8) runs chrooted in the private queue directory, whose ``etc/hosts`` maps the operators' MX
names (gmail-smtp-in.l.google.com, mta5.am0.yahoodns.net, ...) to 127.0.0.x, so ``relay=`` shows
them as in production without editing the machine's /etc/hosts. ``transport_maps`` sends every
known recipient domain to ``smtp:[mx-name]:port`` of its simulator; any other domain bounces
through ``error:`` (and DNS is off), so a test can never mail the Internet.

Retries happen only when a test asks (``flush()``), so every attempt in the log is one the test
caused; ``set_params()`` turns Postfix's own retry timers on for one test. ``expire_deferred()``
makes Postfix give up on what is still deferred, producing the real ``status=expired, returned
to sender`` lines and their bounce notifications.

Use: the session-scoped ``postfix_fleet`` starts everything once (about a second); the
function-scoped ``postfix`` gives each test empty queues, fresh simulators and a log that starts
with the test::

    def test_x(postfix: PostfixFleet) -> None:
        postfix.send("news@example.net", ["throttle-1@yahoo.com"], instance="out07")
        postfix.wait_until_settled()  # first attempts done: deferred
        postfix.flush()
        postfix.wait_until_settled()  # retried: sent
        lines, truth = postfix.log_lines(), postfix.ground_truth()
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest

from tests.conftest import require
from tests.servers.smtp_sim import DOMAIN_MX, HOSTS, OperatorSims, Reply, SimEvent

SBIN = "/usr/sbin:/usr/local/sbin"  # a CI job's PATH may lack sbin, where Postfix lives
POSTFIX = shutil.which("postfix") or shutil.which("postfix", path=SBIN) or "/usr/sbin/postfix"
_BIN = Path(POSTFIX).parent


def _tool(name: str) -> str:
    return str(_BIN / name) if (_BIN / name).exists() else shutil.which(name, path=SBIN) or name


SENDER_DOMAIN = "example.net"  # ours: its MX is a simulator that accepts everything
INSTANCES = {"out05": "127.0.0.5", "out07": "127.0.0.7"}  # instance -> smtp_bind_address
MX_BASE = 20  # MX hosts live on 127.0.0.20, .21, ...
QUIET = 0.25  # seconds without a new log line before the log counts as written
STALLED = 3.0  # seconds a message may sit in incoming with the log still before qmgr is woken
BUSY_QUEUES = ("maildrop", "incoming", "active")  # deferred and hold count as settled

MAIN_CF = """\
# One private test instance, written by tests/servers/postfix.py
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


class PostfixFleet:
    """Both instances, the simulators they relay to, and the log they share."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log_path = root / "maillog"
        self.mx_addresses = {h.name: f"127.0.0.{MX_BASE + i}" for i, h in enumerate(HOSTS)}
        self.sims = OperatorSims(self.mx_addresses)
        self.instances = {
            name: PostfixInstance(name, ip, root, self.log_path) for name, ip in INSTANCES.items()
        }
        self._offset = 0
        self._changed: set[str] = set()  # instances whose main.cf a test changed
        self._retrying: dict[str, int] = {}  # queue ID a flush asked to retry -> log size then

    def __getitem__(self, name: str) -> PostfixInstance:
        return self.instances[name]

    def start(self) -> None:
        self.sims.start()
        transport = "".join(
            f"{domain} smtp:[{mx}]:{self.sims.ports[mx]}\n" for domain, mx in DOMAIN_MX.items()
        )
        hosts = "127.0.0.1 localhost\n" + "".join(
            f"{ip} {name}\n" for name, ip in self.mx_addresses.items()
        )
        for instance in self.instances.values():
            instance.configure(transport, hosts)
            instance.postfix("start")
        self.wait_until_settled()
        self._offset = self._log_size()

    def stop(self) -> None:
        for instance in self.instances.values():
            instance.stop()
        self.sims.stop()

    # -- per test ----------------------------------------------------------------------------

    def reset(self) -> None:
        """An empty queue, fresh simulators and a log that starts now."""
        self._settle(5.0, strict=False, quiet=0.0)  # let deliveries under way finish
        for name in sorted(self._changed):
            self.instances[name].configure_main()
            self.instances[name].postfix("reload")
        self._changed.clear()
        for instance in self.instances.values():
            instance.delete_all()
            instance.flush()  # empties qmgr's list of dead destinations
        self._retrying.clear()
        self._settle(5.0, strict=False)
        self.sims.reset()
        self._offset = self._log_size()

    def send(
        self,
        sender: str,
        recipients: Sequence[str],
        *,
        instance: str = "out05",
        subject: str = "Test message",
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Queues one message on ``instance`` through its smtpd; returns the queue ID."""
        return self.instances[instance].send(sender, recipients, subject=subject, headers=headers)

    def sendmail(
        self,
        sender: str,
        recipients: Sequence[str],
        *,
        instance: str = "out05",
        subject: str = "Test message",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Queues one message on ``instance`` through ``sendmail -C`` and pickup."""
        self.instances[instance].sendmail(sender, recipients, subject=subject, headers=headers)

    def flush(self) -> None:
        """Retry every deferred message on every instance now (``postqueue -f``)."""
        for instance in self.instances.values():
            offset = self._log_size()
            for m in instance.queue():
                if m.queue_name == "deferred":
                    self._retrying[m.queue_id] = offset
            instance.flush()

    def queue(self) -> list[QueuedMessage]:
        return [m for instance in self.instances.values() for m in instance.queue()]

    def wait_until_settled(self, timeout: float = 15.0) -> list[QueuedMessage]:
        """Waits until no message waits for a first attempt or a requested retry and the log
        is written; returns what stays deferred."""
        return self._settle(timeout, strict=True)

    def _settle(self, timeout: float, *, strict: bool, quiet: float = QUIET) -> list[QueuedMessage]:
        deadline = time.monotonic() + timeout
        size, since = -1, time.monotonic()
        while True:
            queued = self.queue()
            busy = [m for m in queued if m.queue_name in BUSY_QUEUES]
            waiting = self._waiting_for_retry()
            now_size = self._log_size()
            if now_size != size:
                size, since = now_size, time.monotonic()
            if not busy and not waiting and time.monotonic() - since >= quiet:
                return queued
            if time.monotonic() - since >= STALLED:  # mail waits, the log is still: wake qmgr
                for name in {m.instance for m in busy if m.queue_name == "incoming"}:
                    self.instances[name].kick()
                since = time.monotonic()
            if time.monotonic() > deadline:
                if strict:  # with the log's last lines: the cause is there, if anywhere
                    tail = "\n".join(self.log_text().splitlines()[-25:])
                    raise TimeoutError(
                        f"Postfix not settled: busy={busy} retrying={waiting}\n{tail}"
                    )
                return queued
            time.sleep(0.05)

    def _waiting_for_retry(self) -> list[str]:
        """Flushed queue IDs with no delivery status logged since their flush."""
        if not self._retrying:
            return []
        start = min(self._retrying.values())
        text = self._read(start)
        for qid, offset in list(self._retrying.items()):
            done = re.compile(rf" {qid}: (?:to=<.*status=|from=<.*status=expired)")
            if done.search(text, offset - start):
                del self._retrying[qid]
        return list(self._retrying)

    def set_params(self, params: Mapping[str, str], instances: Iterable[str] = INSTANCES) -> None:
        """Changes main.cf parameters (and reloads) until the next test; e.g. automatic
        retries: ``{"queue_run_delay": "1s", "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s"}``."""
        for name in instances:
            self._changed.add(name)
            self.instances[name].set_params(params)

    def expire_deferred(self, timeout: float = 15.0) -> None:
        """Makes Postfix give up on every deferred message: one more attempt with a zero
        queue lifetime, so qmgr logs ``status=expired, returned to sender`` and the bounce
        daemon sends the sender a notification, as when ``maximal_queue_lifetime`` runs out."""
        short = {"maximal_queue_lifetime": "0", "bounce_queue_lifetime": "0"}
        normal = {"maximal_queue_lifetime": "5d", "bounce_queue_lifetime": "5d"}
        changed = [
            i for i in self.instances.values() if any(m.queue_name == "deferred" for m in i.queue())
        ]
        for instance in changed:
            instance.set_params(short)
        try:
            self.flush()
            self.wait_until_settled(timeout)
        finally:
            for instance in changed:
                instance.set_params(normal)

    # -- what happened -----------------------------------------------------------------------

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _read(self, offset: int) -> str:
        """Complete log lines from byte ``offset`` on."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return ""
        return data[: data.rfind(b"\n") + 1].decode("utf-8", "replace")

    def log_text(self) -> str:
        """The log lines written since this test began (complete lines only)."""
        return self._read(self._offset)

    def log_lines(self, pattern: str | None = None) -> list[str]:
        lines = self.log_text().splitlines()
        return lines if pattern is None else [ln for ln in lines if re.search(pattern, ln)]

    def copy_log(self, dest: Path) -> Path:
        """Writes this test's log lines to ``dest`` (for code that reads a log file)."""
        dest.write_text(self.log_text())
        return dest

    def ground_truth(self) -> list[SimEvent]:
        """Every answer the simulators gave since this test began."""
        return self.sims.events()

    def script(self, rcpt: str, answers: Iterable[Reply | str]) -> None:
        """What the simulator answers ``rcpt`` on attempt 1, 2, ... (see ``OperatorSims``)."""
        self.sims.script(rcpt, answers)


def _postfix_missing() -> str | None:
    if not Path(POSTFIX).exists():
        return "postfix is not installed (make services)"
    if os.geteuid() != 0:
        return "the Postfix test fleet needs root (postfix start, chroot, postdrop)"
    return None


@pytest.fixture(scope="session")
def postfix_fleet() -> Iterator[PostfixFleet]:
    """Both Postfix instances and the simulators, started once per session."""
    missing = _postfix_missing()
    require(missing is None, missing or "")
    # Not pytest's tmp_path: its parents are mode 0700, and postfix-owned daemons must reach
    # the queue and data directories.
    root = Path(tempfile.mkdtemp(prefix="inboxops-postfix-"))
    root.chmod(0o755)
    fleet = PostfixFleet(root)
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postfix(postfix_fleet: PostfixFleet) -> PostfixFleet:
    """The session's fleet with empty queues, fresh simulators and a log starting now."""
    postfix_fleet.reset()
    return postfix_fleet
