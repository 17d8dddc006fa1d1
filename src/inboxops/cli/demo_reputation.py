"""The reputation half of ``inboxops demo``: a fleet log, its trend, its alerts, its health.

The generated log (``inboxops.demo.maillog``) tells its own story: the dedicated Microsoft IP of
``postfix-out07`` (192.0.2.27) is blocked by Microsoft over the last days, while the rest of the
fleet is healthy. The demo maps the fleet's syslog names to their IPs and pools as an operator
would in ``[reputation]``, ingests the log into the demo database and prints what the commands
print. Nothing is sent anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from sqlalchemy import Engine

from inboxops.cli.render import say
from inboxops.cli.reputation_cmd import print_regressions, print_trend
from inboxops.config import ReputationSettings, Settings


def demo_settings(settings: Settings) -> Settings:
    """The demo fleet as an operator would describe it in ``[reputation]``."""
    from inboxops.demo.maillog_catalogue import FLEET

    senders = {i.smtp: i.ip for i in FLEET}
    senders.update({i.msft: i.msft_ip for i in FLEET if i.msft})
    rep = ReputationSettings(
        internal_domains=("int.example",),
        probe_prefixes=("seed-",),
        senders=senders,
        pools={"main": ("postfix-out0*",), "hc": ("postfix-hc*",), "relay": ("postfix/*",)},
    )
    return replace(settings, reputation=rep)


def write_config(path: Path, db_url: str, own_ips: Sequence[str], settings: Settings) -> None:
    """The demo's settings as a config file, so the printed follow-up commands work as shown."""
    rep = demo_settings(settings).reputation

    def strings(values: Sequence[str]) -> str:
        return "[" + ", ".join(json.dumps(v) for v in values) + "]"

    lines = [
        "# Written by `inboxops demo`: the demo's own database and fleet. Not for production.",
        "[database]",
        f"url = {json.dumps(db_url)}",
        "",
        "[dmarc]",
        f"own_ips = {strings(own_ips)}",
        "",
        "[reputation]",
        f"internal_domains = {strings(rep.internal_domains)}",
        f"probe_prefixes = {strings(rep.probe_prefixes)}",
        "",
        "[reputation.senders]",
        *(f"{json.dumps(name)} = {json.dumps(ip)}" for name, ip in sorted(rep.senders.items())),
        "",
        "[reputation.pools]",
        *(f"{json.dumps(pool)} = {strings(globs)}" for pool, globs in sorted(rep.pools.items())),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run(
    console: Console,
    engine: Engine,
    settings: Settings,
    directory: Path,
    now: datetime,
    seed: int,
    *,
    lines: int = 120_000,
) -> list[Path]:
    """Generate, ingest and show; returns the files it created (for the demo's manifest)."""
    from inboxops.demo.maillog import write_maillog
    from inboxops.operators.domains import domain_classifier
    from inboxops.reputation import report
    from inboxops.reputation.alerting import check_health, check_regressions, record_health
    from inboxops.reputation.ingest import ReputationIngestor
    from inboxops.reputation.store import ReputationStore

    settings = demo_settings(settings)
    rep = settings.reputation
    today = now.date()
    start = today - timedelta(days=13)
    log = directory / "maillog" / "mail.log"
    truth = write_maillog(log, lines=lines, seed=seed, start=start, days=14)
    say(console, f"generated a {truth.lines:,}-line Postfix fleet log in {log} ({truth.story})")
    domains = domain_classifier(engine, settings, offline=True)
    store = ReputationStore(engine, domains, offline=True)
    result = ReputationIngestor(rep, store, domains.classifier).ingest([str(log)])
    excluded = sum(result.excluded.values())
    say(
        console,
        f"ingested {result.counted:,} delivery attempts to external recipients "
        f"({excluded:,} excluded: notices, local, internal, probes; {result.malformed} "
        "malformed lines skipped)",
    )
    days = [start + timedelta(days=i) for i in range(14)]
    print_trend(console, report.day_rows(engine, rep, days), days, rep.colours, limit=12)
    found = check_regressions(engine, settings, today, now=now, dry_run=True)
    if found.alerts:
        say(console, f"Reputation alerts for {today} (printed, not sent)", "bold")
        print_regressions(console, found.alerts)
    pools, _ = check_health(
        engine, settings, today, sorted(rep.pools), now=now, dry_run=True, repeat_hours=24
    )
    record_health(engine, pools, now)  # the demo's own database: `health history` shows it
    for p in pools:
        rate = p.figures.delivery_rate
        verdict = "unhealthy: " + "; ".join(a.message for a in p.alerts) if p.alerts else "healthy"
        say(
            console,
            f"health {today} pool {p.pool}: delivery "
            f"{f'{rate:.1%}' if rate is not None else '-'}, policy blocks "
            f"{p.figures.policy_blocked} -> {verdict}",
            "red" if p.alerts else "green",
        )
    return [log]
