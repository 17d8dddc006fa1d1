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

One instance's directories, commands and queue are tests/servers/postfix_instance.py; this
module runs the two together with the simulators and reads the log they share.

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

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.conftest import require
from tests.servers.postfix_instance import (
    INSTANCES,
    MX_BASE,
    POSTFIX,
    PostfixInstance,
    QueuedMessage,
)
from tests.servers.smtp_sim import DOMAIN_MX, HOSTS, OperatorSims, Reply, SimEvent

QUIET = 0.25  # seconds without a new log line before the log counts as written
STALLED = 3.0  # seconds a message may sit in incoming with the log still before qmgr is woken
BUSY_QUEUES = ("maildrop", "incoming", "active")  # deferred and hold count as settled


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
