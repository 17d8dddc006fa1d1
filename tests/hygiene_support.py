"""What the list hygiene tests share: a config naming listmonk doubles, the CLI run as a user
runs it (with an injected clock, DNS pointed at the loopback server), and the doubles' request
logs read for mutations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from inboxops.cli import root
from inboxops.cli.context import AppContext
from inboxops.listmonk import ListmonkClient, ListmonkInstance
from tests.servers.listmonk import ListmonkDouble

T0 = datetime(2026, 12, 7, 5, 30, tzinfo=UTC)
BLOCKLIST = "PUT /api/subscribers/blocklist"
LISTS_ACTION = "PUT /api/subscribers/lists"


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def write_config(
    path: Path,
    doubles: Sequence[ListmonkDouble],
    *,
    rules: Sequence[str] = (),
    files: Sequence[Path] = (),
) -> Path:
    """A config with ``[exclusions]`` and one ``[[listmonk.instances]]`` per double (its API
    user and token for v4+, the admin credentials for v2/v3)."""
    lines = ["[exclusions]", f"rules = {json.dumps(list(rules))}"]
    lines.append(f"files = {json.dumps([str(f) for f in files])}")
    for double in doubles:
        inst = double.instance()
        lines += [
            "[[listmonk.instances]]",
            f'name = "{inst.name}"',
            f'url = "{inst.url}"',
            f'user = "{inst.user}"',
            f'token = "{inst.token.reveal()}"',
            "timeout = 5",
            # v4+ API tokens in listmonk's own header; v2/v3 the admin's BasicAuth
            f'auth = "{"token" if double.major >= 4 else "basic"}"',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(
    args: Sequence[str],
    *,
    config: Path,
    db: str,
    clock: Clock | None = None,
    nameserver: str | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, Any, str]:
    """``inboxops --config CONFIG --db DB ARGS``: (exit code, parsed JSON or stdout, stderr)."""
    full_env = dict(env or {})
    if nameserver:
        full_env["INBOXOPS_DNS_NAMESERVERS"] = nameserver
    result = CliRunner().invoke(
        root,
        ["--config", str(config), "--db", db, *args],
        env=full_env,
        obj=AppContext(clock=clock or Clock()),
    )
    try:
        out: Any = json.loads(result.stdout)
    except ValueError:
        out = result.stdout
    return result.exit_code, out, result.stderr


def mutations(double: ListmonkDouble) -> list[str]:
    """Every request that could change something (anything but a GET)."""
    return [r.endpoint for r in double.requests if r.method != "GET"]


def sent_ids(double: ListmonkDouble, endpoint: str = BLOCKLIST) -> list[int]:
    """Ids of every ``endpoint`` request the double answered with 200, in order."""
    return [i for r in double.requests_to(endpoint) if r.status == 200 for i in r.body["ids"]]


def statuses(double: ListmonkDouble) -> dict[str, str]:
    """email -> subscriber status."""
    return {str(e): str(s) for e, s in double.sql("SELECT email, status FROM subscribers")}


def no_sleep_client(instance: ListmonkInstance) -> ListmonkClient:
    """A client whose retries do not wait (the retry policy itself is test_listmonk_client's)."""
    return ListmonkClient(instance, sleep=lambda _seconds: None)
