"""``inboxops dmarc``: import, fetch, summary, alert. Thin: parse flags, call, render."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from inboxops.cli.context import AppContext
from inboxops.dmarc.ingest import Ingestor, IngestStats
from inboxops.dmarc.store import DatabaseSink, DryRunSink, Sink
from inboxops.dmarc.summary import Window, window_from
from inboxops.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from inboxops.dmarc.alerting import AlertRun
    from inboxops.dmarc.rules import Alert

EXIT_PROBLEMS = 3

pass_app = click.make_pass_decorator(AppContext)


@click.group()
def dmarc() -> None:
    """DMARC aggregate, failure and SMTP TLS reports: ingest, summarise, alert.

    \b
    Typical cron line (every hour):
      inboxops dmarc fetch --alert
    """


@contextmanager
def _progress(app: AppContext, label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal; nothing under cron or in a pipe."""
    if not app.interactive():
        yield None
        return
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=app.err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _sink(app: AppContext, dry_run: bool) -> Sink:
    return DryRunSink() if dry_run else DatabaseSink(app.engine())


def _render_ingest(app: AppContext, stats: IngestStats, sink: Sink, as_json: bool) -> None:
    if as_json:
        payload = stats.as_json()
        if isinstance(sink, DryRunSink):
            payload["dry_run"] = True
            payload["reports"] = [
                {
                    "org_name": r.org_name,
                    "report_id": r.report_id,
                    "domain": r.domain,
                    "begin": r.begin.isoformat() if r.begin else None,
                    "end": r.end.isoformat() if r.end else None,
                    "records": r.records,
                    "messages": r.messages,
                    "passed": r.passed,
                    "errors": r.errors,
                }
                for r in sink.reports
            ]
        app.print_json(payload)
        return
    console = app.console
    if isinstance(sink, DryRunSink) and sink.reports:
        table = Table(title="Parsed reports (dry run: nothing stored)")
        for col in (
            "reporter",
            "report id",
            "domain",
            "begin (UTC)",
            "records",
            "messages",
            "pass",
        ):
            table.add_column(col, justify="right" if col in ("records", "messages") else "left")
        for r in sink.reports:
            rate = f"{r.passed / r.messages:.1%}" if r.messages else "-"
            table.add_row(
                r.org_name,
                r.report_id[:32],
                r.domain or "-",
                f"{r.begin:%Y-%m-%d %H:%M}" if r.begin else "-",
                str(r.records),
                str(r.messages),
                rate,
            )
        console.print(table)
    console.print(
        f"aggregate reports: {stats.reports_new} new, {stats.reports_known} already stored; "
        f"{stats.records} records ({stats.records_dropped} unusable dropped)\n"
        f"TLS reports: {stats.tls_reports_new} new, {stats.tls_reports_known} known; "
        f"failure reports: {stats.failure_reports_new} new, {stats.failure_reports_known} known; "
        f"not reports: {stats.not_reports}",
        highlight=False,
    )
    for failed in stats.failed:
        app.err_console.print(f"refused: {failed.source}: {failed.reason}", highlight=False)


@dmarc.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--dry-run", is_flag=True, help="Parse and print; write nothing (no database needed)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@pass_app
def import_(app: AppContext, paths: tuple[Path, ...], dry_run: bool, as_json: bool) -> None:
    """Ingest report files: .xml, .gz, .zip, .eml and .json (SMTP TLS), directories recursively.

    Each report is stored once, keyed by reporter and report id, so importing the same files
    again changes nothing. A file that is not a usable report is refused with a one-line reason
    and kept in the quarantine table; the run goes on. Exit code 3 when anything was refused.

    \b
    Examples:
      inboxops dmarc import ~/dmarc-archive/
      inboxops dmarc import --dry-run report.xml.gz
      inboxops dmarc import --json reports/ | jq .reports_new
    """
    sink = _sink(app, dry_run)
    ingestor = Ingestor(sink, app.settings.limits)
    with _progress(app, "importing") as progress:
        stats = ingestor.ingest_paths(paths, progress=progress)
    _render_ingest(app, stats, sink, as_json)
    if stats.failed:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


@dmarc.command()
@click.option("--all", "all_messages", is_flag=True, help="Every message, not only UNSEEN ones.")
@click.option("--dry-run", is_flag=True, help="Parse and print; store nothing, change no flags.")
@click.option("--alert", "then_alert", is_flag=True, help="Run the alert rules after fetching.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@pass_app
def fetch(
    app: AppContext, all_messages: bool, dry_run: bool, then_alert: bool, as_json: bool
) -> None:
    """Read reports from the IMAP mailbox (INBOXOPS_IMAP_* or [dmarc.imap]).

    A message is flagged \\Seen (and moved to the archive folder, if one is set) only after its
    reports are committed, so a crash or a dropped connection loses nothing and a rerun stores
    nothing twice. Mail that is not a report is left untouched. Unparseable reports are
    quarantined and flagged, so they are not retried forever.
    """
    from inboxops.dmarc.fetch import fetch_reports

    settings = app.settings
    if not settings.imap.host:
        raise ConfigError("no IMAP server configured; set INBOXOPS_IMAP_HOST or [dmarc.imap].host")
    if not settings.imap.user or not settings.imap.password:
        raise ConfigError(
            "IMAP credentials missing; set INBOXOPS_IMAP_USER and INBOXOPS_IMAP_PASSWORD "
            "(or [dmarc.imap].user and password / password_file)"
        )
    sink = _sink(app, dry_run)
    ingestor = Ingestor(sink, settings.limits)
    with _progress(app, "fetching") as progress:
        result = fetch_reports(
            settings.imap, ingestor, all_messages=all_messages, dry_run=dry_run, progress=progress
        )
    alert_payload = None
    exit_code = EXIT_PROBLEMS if result.ingest.failed else 0
    if then_alert and not dry_run:
        run = _run_alerts(app, window_from(app.clock(), None, None, None), dry_run=False)
        alert_payload = [a.as_json() for a in run.alerts]
        if run.alerts:
            exit_code = EXIT_PROBLEMS
            if not as_json:
                _print_alerts(app, run)
    if as_json:
        payload = result.as_json()
        if alert_payload is not None:
            payload["alerts"] = alert_payload
        app.print_json(payload)
    else:
        _render_ingest(app, result.ingest, sink, as_json=False)
        app.console.print(
            f"messages: {result.messages_seen} seen, {result.messages_flagged} flagged, "
            f"{result.messages_moved} moved, {result.messages_skipped_not_report} not reports "
            f"left untouched; reconnects: {result.reconnects}",
            highlight=False,
        )
    if exit_code:
        raise click.exceptions.Exit(exit_code)


def window_options(func: Callable[..., None]) -> Callable[..., None]:
    func = click.option(
        "--until", type=click.DateTime(), help="End of the window (UTC, default now)."
    )(func)
    func = click.option("--since", type=click.DateTime(), help="Start of the window (UTC).")(func)
    func = click.option(
        "--days", type=click.IntRange(min=1), help="Window of the last N days (default 7)."
    )(func)
    return func


def resolve_window(
    app: AppContext, days: int | None, since: datetime | None, until: datetime | None
) -> Window:
    if days and (since or until):
        raise click.UsageError("use either --days or --since/--until, not both")
    return window_from(
        app.clock(), days or (None if since else app.settings.alerts.window_days), since, until
    )


@dmarc.command()
@window_options
@click.option("--domain", help="Only reports about this domain (and its subdomains).")
@click.option(
    "--by",
    type=click.Choice(["ip", "org"]),
    default="ip",
    show_default=True,
    help="Group by source IP or by reporting organisation.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list on stdout.")
@pass_app
def summary(
    app: AppContext,
    days: int | None,
    since: datetime | None,
    until: datetime | None,
    domain: str | None,
    by: str,
    as_json: bool,
) -> None:
    """DMARC pass rates per source IP (or per reporting organisation) over a window.

    Own IPs (INBOXOPS_OWN_IPS / [dmarc].own_ips) are marked, so a failing own stream stands out
    from spoofers and forwarders.

    \b
    Examples:
      inboxops dmarc summary --days 1
      inboxops dmarc summary --since 2026-11-01 --until 2026-11-08 --domain example.com
      inboxops dmarc summary --by org --json
    """
    from inboxops.dmarc import summary as queries

    window = resolve_window(app, days, since, until)
    if by == "org":
        orgs = queries.org_stats(app.engine(), window, domain)
        if as_json:
            app.print_json(
                [
                    {
                        "org": o.org,
                        "reports": o.reports,
                        "messages": o.messages,
                        "passed": o.passed,
                        "failed": o.failed,
                        "pass_rate": round(o.pass_rate, 4),
                        "ips": o.ips,
                    }
                    for o in orgs
                ]
            )
            return
        table = Table(title=f"DMARC by reporter, {window.describe()}")
        for col in ("reporter", "reports", "messages", "passed", "failed", "pass rate", "IPs"):
            table.add_column(col, justify="left" if col == "reporter" else "right")
        for o in orgs:
            table.add_row(
                o.org,
                str(o.reports),
                str(o.messages),
                str(o.passed),
                str(o.failed),
                f"{o.pass_rate:.1%}",
                str(o.ips),
            )
        app.console.print(table)
        return
    stats = queries.ip_stats(app.engine(), window, app.settings.own_ips, domain)
    if as_json:
        app.print_json(
            [
                {
                    "ip": s.ip,
                    "messages": s.messages,
                    "passed": s.passed,
                    "failed": s.failed,
                    "pass_rate": round(s.pass_rate, 4),
                    "own": s.own,
                    "orgs": list(s.orgs),
                    "domains": list(s.domains),
                    "policies": list(s.policies),
                }
                for s in stats
            ]
        )
        return
    table = Table(title=f"DMARC by source IP, {window.describe()}")
    for col in ("source IP", "own", "messages", "passed", "failed", "pass rate", "reporters"):
        table.add_column(
            col, justify="right" if col in ("messages", "passed", "failed", "pass rate") else "left"
        )
    for s in stats:
        rate_style = "" if s.pass_rate >= app.settings.alerts.min_pass_rate else "red"
        table.add_row(
            s.ip,
            "yes" if s.own else "",
            str(s.messages),
            str(s.passed),
            str(s.failed),
            f"[{rate_style}]{s.pass_rate:.1%}[/]" if rate_style else f"{s.pass_rate:.1%}",
            ", ".join(s.orgs[:4]) + (" ..." if len(s.orgs) > 4 else ""),
        )
    app.console.print(table)
    if not stats:
        app.console.print("no DMARC records in this window", highlight=False)


def _run_alerts(app: AppContext, window: Window, *, dry_run: bool) -> AlertRun:
    from inboxops.dmarc import alerting

    return alerting.check(app.engine(), app.settings, window, dry_run=dry_run, now=app.clock())


def _print_alerts(app: AppContext, run: AlertRun) -> None:
    print_alerts(app.console, run.alerts)
    if run.sent_to:
        app.console.print(f"sent to: {', '.join(run.sent_to)}", highlight=False)
    if run.suppressed:
        app.console.print(
            f"{len(run.suppressed)} alert(s) already sent and not yet due again "
            "([dmarc.alerts].repeat_hours)",
            highlight=False,
        )


@dmarc.command()
@window_options
@click.option("--dry-run", is_flag=True, help="Evaluate and print; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the alerts as a JSON list.")
@pass_app
def alert(
    app: AppContext,
    days: int | None,
    since: datetime | None,
    until: datetime | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Alert when an own IP falls below the pass-rate floor or another IP spoofs our domain.

    \b
    Rules (thresholds in [dmarc.alerts]):
      own_ip_failing  an own IP/CIDR below 95% DMARC pass over the window
      spoofing        a foreign IP with 20 or more failing messages as our domain
    Nothing is sent when all is healthy. Exit code 3 when there are alerts, 0 when healthy.
    """
    run = _run_alerts(app, resolve_window(app, days, since, until), dry_run=dry_run)
    if as_json:
        app.print_json([a.as_json() | {"suppressed": a in run.suppressed} for a in run.alerts])
    elif run.alerts:
        _print_alerts(app, run)
    else:
        app.console.print(f"healthy: no DMARC alerts for {run.window.describe()}", highlight=False)
    if run.cleared and not as_json:
        from inboxops.dmarc.rules import cleared_line

        for kind, ip in run.cleared:
            app.console.print(f"[green]{cleared_line(kind, ip)}[/] (sent)", highlight=False)
    if run.unsent_reason:
        app.err_console.print(f"warning: {run.unsent_reason}", highlight=False)
    if run.alerts:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


def print_alerts(console: Console, alerts: Sequence[Alert]) -> None:
    """Alerts as short blocks: a headline, then what to check (tables wrap advice badly)."""
    from inboxops.dmarc.rules import headline

    for a in alerts:
        colour = "red" if a.kind == "own_ip_failing" else "yellow"
        console.print(f"[bold {colour}]{a.kind}[/] {headline(a)}", highlight=False)
        console.print(f"  {a.advice}", highlight=False)
