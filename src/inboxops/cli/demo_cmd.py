"""``inboxops demo``: the whole DMARC loop on generated data, in a database of its own.

The demo never touches the operator's real database: unless ``--db`` is given it uses a SQLite
file inside the demo directory, so ``make demo`` can be run on a production host safely.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import click
from rich.table import Table

from inboxops.cli.context import AppContext
from inboxops.cli.dmarc_cmd import print_alerts
from inboxops.config import parse_networks
from inboxops.dmarc import summary
from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.store import DatabaseSink
from inboxops.storage.db import open_database

pass_app = click.make_pass_decorator(AppContext)

DEMO_OWN_IPS = ("192.0.2.10", "192.0.2.11", "198.51.100.25")


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".demo",
    show_default=True,
    help="Where the sample reports and the demo database go (recreated each run).",
)
@click.option("--reports", type=click.IntRange(1, 100_000), default=300, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same reports.")
@click.pass_context
def demo(ctx: click.Context, directory: Path, reports: int, seed: int) -> None:
    """Generate sample DMARC reports, ingest them, print the summary and the alerts.

    The sample tells a story: three own sending IPs, one of them with a broken DKIM selector
    (about 80% pass), and one outside IP spoofing the domain. Nothing is sent to any alert
    channel; the alerts are printed.
    """
    from inboxops.demo.generate import generate_reports
    from inboxops.dmarc import alerting

    app = ctx.find_object(AppContext)
    assert app is not None
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    db_url = app.db_url or f"sqlite:///{(directory / 'inboxops-demo.db').resolve()}"
    console = app.console

    paths = generate_reports(
        directory / "reports", count=reports, seed=seed, own_ips=DEMO_OWN_IPS, start=app.clock()
    )
    console.print(f"generated {len(paths)} sample reports in {directory / 'reports'}")

    engine = open_database(db_url)
    try:
        stats = Ingestor(DatabaseSink(engine), app.settings.limits).ingest_paths([directory])
        console.print(
            f"ingested into {db_url}: {stats.reports_new} reports, {stats.records} records, "
            f"{stats.messages} messages",
            highlight=False,
        )
        settings = replace(app.settings, own_ips=parse_networks(list(DEMO_OWN_IPS), origin="demo"))
        window = summary.window_from(app.clock(), 7, None, None)
        ips = summary.ip_stats(engine, window, settings.own_ips)
        table = Table(title=f"DMARC by source IP, {window.describe()} (top 15)")
        for col in ("source IP", "own", "messages", "failed", "pass rate", "reporters"):
            table.add_column(col, justify="left" if col in ("source IP", "reporters") else "right")
        for s in ips[:15]:
            table.add_row(
                s.ip,
                "yes" if s.own else "",
                str(s.messages),
                str(s.failed),
                f"{s.pass_rate:.1%}",
                ", ".join(s.orgs[:3]) + (" ..." if len(s.orgs) > 3 else ""),
            )
        console.print(table)
        run = alerting.check(engine, settings, window, dry_run=True)
    finally:
        engine.dispose()
    if not run.alerts:
        console.print("no alerts: all healthy")
        return
    console.print("[bold]Alerts[/] (printed, not sent: this is the demo)")
    print_alerts(console, run.alerts)
    console.print(
        f"Explore: inboxops --db {db_url} dmarc summary --by org", highlight=False, soft_wrap=True
    )
