"""``inboxops dmarc prune | export``: keeping the database healthy, and taking data out of it.

``prune`` deletes what is past its retention (weekly, from cron); ``export`` streams records
as CSV or JSON Lines for spreadsheets and other tools. Thin, like every command: parse flags,
call :mod:`inboxops.dmarc.prune` or :mod:`inboxops.dmarc.export`, render.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import click

from inboxops.cli.context import AppContext, pass_app
from inboxops.cli.dmarc_cmd import dmarc, dmarc_window, empty_hint
from inboxops.cli.options import prune_options, window_options
from inboxops.cli.progress import progress_bar
from inboxops.cli.render import print_counts, say
from inboxops.errors import ConfigError
from inboxops.window import When


@dmarc.command("prune")
@prune_options("what is", "400d", "[dmarc] retention_days")
@pass_app
def prune_cmd(app: AppContext, older_than: int | None, dry_run: bool, as_json: bool) -> None:
    """Delete reports past their retention, each with everything that hangs off it.

    Aggregate and SMTP TLS reports go by the midpoint of their date range (as the views count
    them), failure reports by arrival, quarantined inputs by when they were stored. Work goes
    in short transactions of up to 1,000 reports, so an hourly fetch is never held up for long
    and an interrupted run leaves only whole reports: rerun it to finish.

    \b
    Examples:
      inboxops dmarc prune --older-than 400d --dry-run
      inboxops dmarc prune                      # uses [dmarc] retention_days
    """
    from inboxops.dmarc import prune
    from inboxops.retention import cutoff_for, retention_days

    days = retention_days(older_than, app.settings.dmarc.retention_days)
    cutoff = cutoff_for(app.clock(), days)
    engine = app.engine(readonly=True)  # never create a database only to find it empty
    if dry_run:
        result = prune.count(engine, days, cutoff)
    else:
        with progress_bar(app, "pruning") as progress:
            result = prune.prune(engine, days, cutoff, progress=progress)
    if as_json:
        app.print_json(result.as_json())
        return
    verb = "would delete" if dry_run else "deleted"
    say(
        app.console,
        f"{verb} {result.counts['dmarc_reports']} aggregate, {result.counts['tls_reports']} TLS "
        f"and {result.counts['failure_reports']} failure report(s) and "
        f"{result.counts['quarantine']} quarantined input(s) from before "
        f"{cutoff:%Y-%m-%d %H:%M} UTC ({days} days)" + (" (dry run)" if dry_run else ""),
    )
    print_counts(app.console, result.counts, verb)


@dmarc.command("export")
@window_options
@click.option("--domain", help="Only reports about this domain (and its subdomains).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default="csv",
    show_default=True,
    help="CSV (a header line, then one line per record) or JSON Lines (one object per line).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (replaced only once complete); default stdout.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="No DNS lookups: the ptr/service columns from the DNS cache only.",
)
@pass_app
def export_cmd(
    app: AppContext,
    days: int | None,
    since: When | None,
    until: When | None,
    domain: str | None,
    fmt: str,
    output: Path | None,
    offline: bool,
) -> None:
    """One row per DMARC record of the window, with its report and auth results, flattened.

    For spreadsheets and other tools. Streamed: any window exports in constant memory. Each
    row carries its source IP's PTR, forward confirmation, base domain, service and country
    (looked up once per IP through the DNS cache). Cells a spreadsheet would run as formulas
    are neutralised with a leading '.

    \b
    Examples:
      inboxops dmarc export --since 2026-01-01 --output dmarc-2026.csv
      inboxops dmarc export --days 30 --domain example.com --format jsonl | jq .source_ip
    """
    from inboxops.dmarc import export
    from inboxops.dmarc.enrich import Enricher

    window = dmarc_window(app, days, since, until)
    engine = app.engine(readonly=True)
    enricher = Enricher(engine, app.settings, offline=offline, clock=app.clock)
    try:
        sources = enricher.sources(export.source_ips(engine, window, domain))
    finally:
        enricher.close()
    if enricher.warning:
        say(app.err_console, f"warning: {enricher.warning}", "yellow")
    rows = export.iter_rows(engine, window, domain, sources=sources)
    write = export.FORMATS[fmt]
    if output is None:
        # UTF-8 whatever the locale, like the files: an export is data, not terminal text.
        stdout = io.TextIOWrapper(sys.stdout.buffer, "utf-8", newline="")
        try:
            n = write(rows, stdout)
        finally:
            stdout.detach()  # flushes; leaves the process's stdout open
    else:
        if not output.parent.is_dir():
            raise ConfigError(f"directory {output.parent} does not exist; create it first")
        with export.replacing(output) as out:
            n = write(rows, out)
        say(app.console, f"exported {n} record(s), {window.describe()}, to {output}")
    if n == 0:
        say(app.err_console, empty_hint(app, window))
