"""``inboxops dmarc``: import, fetch, summary (``alert`` is in dmarc_alert.py). Thin: parse
flags, call, render."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from inboxops.cli.context import AppContext, json_option, pass_app
from inboxops.cli.options import resolve_window, window_options
from inboxops.cli.progress import progress_bar
from inboxops.cli.render import Cell, Col, print_table, say, styled
from inboxops.errors import ConfigError
from inboxops.window import When, Window

if TYPE_CHECKING:
    from inboxops.dmarc.ingest import IngestStats
    from inboxops.dmarc.model import IpStat
    from inboxops.dmarc.store import Sink

EXIT_PROBLEMS = 3

offline_option = click.option(
    "--offline",
    is_flag=True,
    help="No DNS lookups: PTR names and services from the DNS cache only.",
)


@click.group()
def dmarc() -> None:
    """DMARC aggregate, failure and SMTP TLS reports: ingest, summarise, alert.

    \b
    Typical cron line (every hour):
      inboxops dmarc fetch --alert
    """


def _sink(app: AppContext, dry_run: bool) -> Sink:
    """The database, or for a dry run a sink that only *reads* it (if there is one)."""
    if not dry_run:
        from inboxops.dmarc.store import DatabaseSink

        return DatabaseSink(app.engine())
    from inboxops.dmarc.dryrun import DryRunSink
    from inboxops.storage.db import NoDatabase

    try:
        return DryRunSink(app.engine(readonly=True))
    except NoDatabase:
        return DryRunSink(None)


def _render_ingest(app: AppContext, stats: IngestStats, sink: Sink, as_json: bool) -> None:
    from inboxops.dmarc.dryrun import DryRunSink

    dry = sink if isinstance(sink, DryRunSink) else None
    if as_json:
        payload = stats.as_json()
        if dry is not None:
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
                    "outcome": r.outcome,
                    "errors": r.errors,
                }
                for r in dry.reports
            ]
        app.print_json(payload)
        return
    console = app.console
    if dry is not None and dry.reports:
        print_table(
            console,
            "Parsed reports (dry run: nothing stored)",
            [
                Col("reporter", "key"),
                Col("report id", "key"),
                Col("domain", "key"),
                Col("begin (UTC)", "key"),
                Col("records", "number"),
                Col("messages", "number"),
                Col("pass", "number"),
                Col("would be", "key"),
            ],
            [
                (
                    r.org_name,
                    r.report_id,
                    r.domain or "-",
                    f"{r.begin:%Y-%m-%d %H:%M}" if r.begin else "-",
                    str(r.records),
                    str(r.messages),
                    f"{r.passed / r.messages:.1%}" if r.messages else "-",
                    r.outcome,
                )
                for r in dry.reports
            ],
        )
    say(
        console,
        f"aggregate reports: {stats.reports_new} new, {stats.reports_known} already stored"
        + (f", {stats.reports_replaced} replaced" if stats.reports_replaced else "")
        + (f", {stats.reports_conflicting} conflicting" if stats.reports_conflicting else "")
        + f"; {stats.records} records ({stats.records_dropped} unusable dropped)",
    )
    say(
        console,
        f"TLS reports: {stats.tls_reports_new} new, {stats.tls_reports_known} known; "
        f"failure reports: {stats.failure_reports_new} new, {stats.failure_reports_known} "
        f"known; not reports: {stats.not_reports}",
    )
    for reason, n in sorted(stats.records_dropped_by_reason.items()):
        say(console, f"  dropped records: {n} x {reason}")
    for c in stats.conflicts:
        say(
            app.err_console,
            f"conflict: {c.org_name} / {c.report_id}: {c.source} differs from the copy "
            f"stored from {c.stored_source or 'an earlier run'}; kept the stored one",
            "yellow",
        )
    for failed in stats.failed:
        say(app.err_console, f"refused: {failed.source}: {failed.reason}")


@dmarc.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--dry-run",
    is_flag=True,
    help="Parse and report what a real run would store (new, known, conflicting); write "
    "nothing. Reads the database if there is one.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Accepted for symmetry with summary and alert: import never makes DNS lookups "
    "(sources are looked up when reports are read).",
)
@json_option("Print one JSON object on stdout.")
@pass_app
def import_(
    app: AppContext, paths: tuple[Path, ...], dry_run: bool, offline: bool, as_json: bool
) -> None:
    """Ingest report files: .xml, .gz, .zip, .eml and .json (SMTP TLS), directories recursively.

    Each report is stored once, keyed by reporter and report id, so importing the same files
    again changes nothing. A file that is not a usable report is refused with a one-line reason
    and kept in the quarantine table; the run goes on. A file whose name says it is a report
    (.xml, .gz, .zip, .json, .eml) but that holds none is refused too; other files that are
    not reports (a README) are counted as not_reports. Exit code 3 when anything was refused.

    \b
    Examples:
      inboxops dmarc import ~/dmarc-archive/
      inboxops dmarc import --dry-run report.xml.gz
      inboxops dmarc import --json reports/ | jq .reports_new
    """
    from inboxops.dmarc import pool

    limits = app.settings.dmarc.limits
    files = pool.files_of(paths)
    # workers start parsing now, while the database layer is imported and opened
    with pool.Parsing(files, limits, pool.workers_for(len(files))) as parsing:
        from inboxops.dmarc.ingest import Ingestor

        sink = _sink(app, dry_run)
        with progress_bar(app, "importing") as progress:
            stats = Ingestor(sink, limits).ingest_parsed(parsing, progress=progress)
    _render_ingest(app, stats, sink, as_json)
    if stats.failed:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


@dmarc.command()
@click.option("--all", "all_messages", is_flag=True, help="Every message, not only UNSEEN ones.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Parse and report what a real run would store; store nothing, change no flags.",
)
@click.option("--alert", "then_alert", is_flag=True, help="Run the alert rules after fetching.")
@click.option(
    "--offline",
    is_flag=True,
    help="With --alert: no DNS lookups for the alerts' PTR names and services (cache only).",
)
@click.option(
    "--folder",
    metavar="NAME",
    help="Read this folder for this run instead of [dmarc.imap] folder (e.g. a shared ops@ "
    "mailbox's folder holding old reports).",
)
@click.option(
    "--move-to",
    metavar="FOLDER",
    help="Move processed reports to this folder for this run instead of [dmarc.imap] "
    "archive_folder (created if missing).",
)
@json_option("Print one JSON object on stdout.")
@pass_app
def fetch(
    app: AppContext,
    all_messages: bool,
    dry_run: bool,
    then_alert: bool,
    offline: bool,
    folder: str | None,
    move_to: str | None,
    as_json: bool,
) -> None:
    """Read reports from the IMAP mailbox (INBOXOPS_IMAP_* or [dmarc.imap]).

    A message is flagged \\Seen (and moved to the archive folder, if one is set) only after its
    reports are committed, so a crash or a dropped connection loses nothing and a rerun stores
    nothing twice. Mail that is not a report is left untouched. Unparseable reports are
    quarantined and flagged, so they are not retried forever.

    \b
    Backfill old reports from another folder and archive them, in one run:
      inboxops dmarc fetch --folder Shared/ops --all --move-to DMARC/Processed
    """
    from dataclasses import replace

    from inboxops.dmarc.fetch import check_login, fetch_reports
    from inboxops.dmarc.ingest import Ingestor

    settings = app.settings
    imap = settings.dmarc.imap
    if folder is not None:
        imap = replace(imap, folder=folder)
    if move_to is not None:
        imap = replace(imap, archive_folder=move_to)
    if not imap.host:
        raise ConfigError("no IMAP server configured; set INBOXOPS_IMAP_HOST or [dmarc.imap] host")
    check_login(imap)
    sink = _sink(app, dry_run)
    ingestor = Ingestor(sink, settings.dmarc.limits)
    with progress_bar(app, "fetching") as progress:
        result = fetch_reports(
            imap, ingestor, all_messages=all_messages, dry_run=dry_run, progress=progress
        )
    alert_payload = None
    exit_code = EXIT_PROBLEMS if result.ingest.failed else 0
    if then_alert and not dry_run:
        from inboxops.cli.dmarc_alert import alerts_json, print_run, run_alerts

        window = resolve_window(
            app, None, None, None, default_days=settings.dmarc.alerts.window_days
        )
        run = run_alerts(app, window, domain=None, dry_run=False, offline=offline)
        alert_payload = alerts_json(run)
        if run.alerts:
            exit_code = EXIT_PROBLEMS
            if not as_json:
                print_run(app, run)
    if as_json:
        payload = result.as_json()
        if dry_run:
            payload["dry_run"] = True
        if alert_payload is not None:
            payload["alerts"] = alert_payload
        app.print_json(payload)
    else:
        _render_ingest(app, result.ingest, sink, as_json=False)
        say(
            app.console,
            f"messages: {result.messages_seen} seen, {result.messages_flagged} flagged, "
            f"{result.messages_moved} moved, {result.messages_skipped_not_report} not reports "
            f"left untouched; reconnects: {result.reconnects}",
        )
    if exit_code:
        raise click.exceptions.Exit(exit_code)


def dmarc_window(
    app: AppContext, days: int | None, since: When | None, until: When | None
) -> Window:
    return resolve_window(
        app, days, since, until, default_days=app.settings.dmarc.alerts.window_days
    )


def empty_hint(app: AppContext, window: Window) -> str:
    """What to say under an empty window: which dates the database does hold."""
    from inboxops.dmarc.summary import held_range

    return f"no DMARC reports for {window.describe()}; {held_range(app.engine()).describe()}"


@dmarc.command()
@window_options
@click.option("--domain", help="Only reports about this domain (and its subdomains).")
@click.option(
    "--by",
    type=click.Choice(["ip", "org", "service"]),
    default="ip",
    show_default=True,
    help="Group by source IP, by reporting organisation or by sending service.",
)
@offline_option
@json_option("Print a JSON list on stdout.")
@pass_app
def summary(
    app: AppContext,
    days: int | None,
    since: When | None,
    until: When | None,
    domain: str | None,
    by: str,
    offline: bool,
    as_json: bool,
) -> None:
    """DMARC pass rates per source IP (or per reporting organisation or service) over a window.

    Each IP is shown with its PTR name (forward-confirmed or not) and its sending service, looked
    up through the DNS cache. Own IPs (INBOXOPS_OWN_IPS / [dmarc] own_ips) are marked, and each
    failing external IP is classified as forwarded or spoofing. A report counts in the window
    holding the midpoint of its date range (docs/dmarc-summary.md).

    \b
    Examples:
      inboxops dmarc summary --days 1
      inboxops dmarc summary --since 2026-11-01 --until 2026-11-08 --domain example.com
      inboxops dmarc summary --by service
      inboxops dmarc summary --by org --json
    """
    from inboxops.dmarc import summary as queries

    window = dmarc_window(app, days, since, until)
    engine = app.engine(readonly=True)
    if by == "org":
        orgs = queries.org_stats(engine, window, domain)
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
        if not orgs:
            say(app.console, empty_hint(app, window))
            return
        print_table(
            app.console,
            f"DMARC by reporter, {window.describe()}",
            [
                Col("reporter", "key"),
                Col("reports", "number"),
                Col("messages", "number"),
                Col("passed", "number"),
                Col("failed", "number"),
                Col("pass rate", "number"),
                Col("IPs", "number"),
            ],
            [
                (
                    o.org,
                    str(o.reports),
                    str(o.messages),
                    str(o.passed),
                    str(o.failed),
                    f"{o.pass_rate:.1%}",
                    str(o.ips),
                )
                for o in orgs
            ],
        )
        return
    from inboxops.dmarc.enrich import enriched_ip_stats

    settings = app.settings.dmarc
    stats, enricher = enriched_ip_stats(
        engine, app.settings, window, domain, offline=offline, clock=app.clock
    )
    if enricher.warning:
        say(app.err_console, f"warning: {enricher.warning}", "yellow")
    if by == "service":
        _summary_by_service(app, window, stats, as_json)
        return
    from inboxops.dmarc.forwarding import classify, evidence_of

    threshold = settings.alerts.spoof_min_failed
    if as_json:
        app.print_json(
            [
                {
                    "ip": s.ip,
                    **(s.source.as_json() if s.source else {}),
                    "messages": s.messages,
                    "passed": s.passed,
                    "failed": s.failed,
                    "pass_rate": round(s.pass_rate, 4),
                    "own": s.own,
                    "classification": classify(s, threshold),
                    "forwarded_failed": min(s.forwarded_failed, s.failed),
                    "evidence": list(evidence_of(s)),
                    "orgs": list(s.orgs),
                    "domains": list(s.domains),
                    "policies": list(s.policies),
                }
                for s in stats
            ]
        )
        return
    if not stats:
        say(app.console, empty_hint(app, window))
        return
    floor = settings.alerts.min_pass_rate
    print_table(
        app.console,
        f"DMARC by source IP, {window.describe()}",
        [
            Col("source IP", "key"),
            Col("PTR (service)", "key"),
            Col("messages", "number"),
            Col("failed", "number"),
            Col("pass rate", "number"),
            Col("verdict", "key"),
            Col("reporters"),
        ],
        [
            (
                s.ip,
                _ptr_cell(s),
                str(s.messages),
                str(s.failed),
                styled(f"{s.pass_rate:.1%}", "red")
                if s.pass_rate < floor
                else f"{s.pass_rate:.1%}",
                _verdict_cell(classify(s, threshold)),
                ", ".join(s.orgs[:3]) + (" ..." if len(s.orgs) > 3 else ""),
            )
            for s in stats
        ],
    )


def _ptr_cell(s: IpStat) -> str:
    """``o1.ptr2.sendgrid.net (Twilio SendGrid)``; an unconfirmed PTR is marked ``?``."""
    src = s.source
    if src is None or not src.ptr:
        return "(not cached)" if src is not None and src.status == "not_cached" else "-"
    text = src.ptr if src.fcrdns else f"{src.ptr}?"
    return f"{text} ({src.service})" if src.service else text


def _verdict_cell(verdict: str | None) -> Cell:
    if verdict == "spoofing":
        return styled("spoofing", "red")
    if verdict == "forwarded":
        return styled("forwarded", "cyan")
    return "own" if verdict == "own" else ""


def _summary_by_service(
    app: AppContext, window: Window, stats: Sequence[IpStat], as_json: bool
) -> None:
    from inboxops.dmarc.enrich import by_service

    rows = by_service(stats)
    if as_json:
        app.print_json(
            [
                {
                    "service": r.service,
                    "service_type": r.service_type,
                    "ips": r.ips,
                    "confirmed_ips": r.confirmed_ips,
                    "messages": r.messages,
                    "passed": r.passed,
                    "failed": r.failed,
                    "forwarded_failed": r.forwarded_failed,
                    "pass_rate": round(r.pass_rate, 4),
                }
                for r in rows
            ]
        )
        return
    if not rows:
        say(app.console, empty_hint(app, window))
        return
    print_table(
        app.console,
        f"DMARC by sending service, {window.describe()}",
        [
            Col("service", "key"),
            Col("type", "key"),
            Col("IPs", "number"),
            Col("confirmed", "number"),
            Col("messages", "number"),
            Col("failed", "number"),
            Col("forwarded", "number"),
            Col("pass rate", "number"),
        ],
        [
            (
                r.service or "(no known service)",
                r.service_type or "-",
                str(r.ips),
                str(r.confirmed_ips),
                str(r.messages),
                str(r.failed),
                str(r.forwarded_failed),
                f"{r.pass_rate:.1%}",
            )
            for r in rows
        ],
    )
