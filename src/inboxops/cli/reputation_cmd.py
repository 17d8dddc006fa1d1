"""``inboxops reputation``: Postfix logs in; per IP x operator trend and regression alerts out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from inboxops.cli.context import AppContext, json_option, pass_app
from inboxops.cli.options import WHEN, prune_options, resolve_window, window_options
from inboxops.cli.progress import progress_bar
from inboxops.cli.render import Col, print_counts, print_table, say, styled
from inboxops.window import When

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from inboxops.config.reputation import ColourSettings
    from inboxops.reputation.metrics import DayRow
    from inboxops.reputation.rules import Regression

EXIT_PROBLEMS = 3
_COLOURS = {"green": "green", "yellow": "yellow", "red": "red"}
_BAR = "▁▂▃▄▅▆▇█"


@click.group()
def reputation() -> None:
    """Reputation from your own Postfix logs: every delivery attempt, per sending IP and
    receiving operator (Gmail, Microsoft, Yahoo, Apple, Comcast, ...).

    \b
    Typical schedule:
      10 6 * * *  inboxops reputation ingest /var/log/mail.log.1 && inboxops reputation alert
      0 20 * * *  inboxops health
      10 3 * * 0  inboxops reputation prune           # weekly: old attempts go, the trend stays
    """


@reputation.command("ingest")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--year",
    type=click.IntRange(1970, 9999),
    help="Year of the first line, for syslog timestamps that carry none (default: inferred "
    "from the file's date; a log spanning New Year moves on by itself).",
)
@click.option("--offline", is_flag=True, help="No DNS lookups: MX from the cache only.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Parse, classify and aggregate in memory; write nothing (no database needed). "
    "relay=none attempts stay 'unknown'.",
)
@json_option("Print one JSON object on stdout.")
@pass_app
def ingest_cmd(
    app: AppContext,
    sources: tuple[str, ...],
    year: int | None,
    offline: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Read Postfix logs (plain, .gz, or - for stdin) into the reputation store.

    Every delivery attempt to an external recipient is kept once, however often the same or an
    overlapping log is read (yesterday's rotated file and today's). Bounce notifications
    (from=<>), local deliveries, internal recipients ([reputation] internal_domains), probe
    mailboxes ([reputation] probe_prefixes) and inbound smtpd/postscreen lines are excluded
    and counted. A malformed line is counted and skipped. Exit 3 when a file could not be read.

    \b
    Examples:
      inboxops reputation ingest /var/log/mail.log /var/log/mail.log.1
      zcat /var/log/mail.log.2.gz | inboxops reputation ingest -
    """
    from inboxops.reputation.ingest import ReputationIngestor

    for source in sources:
        if source != "-" and not Path(source).is_file():
            raise click.BadParameter(f"{source} is not a file", param_hint="SOURCES")
    settings = app.settings
    if dry_run:
        from inboxops.operators.classify import Classifier

        classifier = Classifier(dict(settings.operators.rules) or None)
        ingestor = ReputationIngestor(settings.reputation, None, classifier, year=year)
        early = None
    else:  # the database and DNS layers only when they are used (a dry run starts faster)
        from inboxops.operators.classify import Classifier
        from inboxops.reputation.ingest import start_reading

        # a big first log's readers start parsing before the database layer is even imported
        pg = app.effective_db_url.startswith("postgres")
        early = start_reading(
            sources[0],
            settings.reputation,
            Classifier(dict(settings.operators.rules) or None),
            year=year,
            pg=pg,
        )
        try:
            from inboxops.operators.domains import domain_classifier
            from inboxops.reputation.store import ReputationStore

            engine = app.engine()
            domains = domain_classifier(engine, settings, offline=offline, clock=app.clock)
            store = ReputationStore(engine, domains, offline=offline)
        except BaseException:
            if early is not None:
                early.close()
            raise
        if early is not None and pg != (engine.dialect.name == "postgresql"):
            early.close()  # staged for the other database: read again
            early = None
        ingestor = ReputationIngestor(settings.reputation, store, domains.classifier, year=year)
    with progress_bar(app, "reading logs") as progress:
        result = ingestor.ingest(list(sources), progress=progress, early=early)
    if as_json:
        payload = result.as_json()
        if ingestor.aggregator is not None:
            payload["dry_run"] = True
            payload["figures"] = _dry_figures(app, ingestor.aggregator)
        app.print_json(payload)
    else:
        excluded = ", ".join(f"{n} {k}" for k, n in result.excluded.items() if n) or "none"
        say(
            app.console,
            f"{result.lines} lines from {result.files} file(s): {result.attempts} delivery "
            f"attempts, {result.counted} to external recipients ({result.new} new, "
            f"{result.known} already stored); excluded: {excluded}"
            + (
                f"; {result.past_retention} on days closed by `reputation prune` (skipped)"
                if result.past_retention
                else ""
            ),
        )
        say(
            app.console,
            f"inbound {result.inbound}, other Postfix {result.other}, not Postfix "
            f"{result.non_postfix}, malformed {result.malformed}; expiries {result.expiries}; "
            f"days updated: {', '.join(result.days) or 'none'}; DNS lookups {result.dns_lookups}",
        )
        for sample in result.malformed_samples:
            say(app.err_console, f"malformed: {sample}")
    for failed in result.failed:
        say(app.err_console, f"refused: {failed['source']}: {failed['reason']}")
    if result.failed:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


def _dry_figures(app: AppContext, aggregator: object) -> list[dict[str, object]]:
    """The in-memory figures in `trend --json`'s shape, busiest first."""
    from inboxops.reputation.aggregate import Aggregator
    from inboxops.reputation.metrics import DayRow

    assert isinstance(aggregator, Aggregator)
    rep = app.settings.reputation
    rows: dict[tuple[object, str, str, str], DayRow] = {}
    for (day, name, operator, segment), figures in aggregator.figures().items():
        key = (day, rep.sender(name), operator, segment)
        row = rows.setdefault(key, DayRow(day, rep.sender(name), operator, segment))
        row.figures.add(figures)
    ordered = sorted(rows.values(), key=lambda r: (r.day, -r.figures.attempts, r.sending_ip))
    return [r.as_json(rep.colours) for r in ordered]


def trend_days(
    app: AppContext, days: int | None, since: When | None, until: When | None
) -> list[date]:
    """``--days N``: the last N calendar days (UTC) including today; else the window's days."""
    if since is None and until is None:
        today = app.clock().date()
        n = days or 14
        return [today - timedelta(days=n - 1 - i) for i in range(n)]
    return resolve_window(app, days, since, until, default_days=14).days()


def _spark(values: list[float | None], colours: list[str | None]) -> Text:
    from rich.text import Text

    out = Text()
    for value, colour in zip(values, colours, strict=True):
        if value is None:
            out.append("·", style="dim")
            continue
        out.append(_BAR[min(int(value * (len(_BAR) - 1) + 0.5), len(_BAR) - 1)], style=colour or "")
    return out


def print_trend(
    console: Console,
    rows: Sequence[DayRow],
    day_list: Sequence[date],
    thresholds: ColourSettings,
    *,
    limit: int | None = None,
) -> None:
    """One line per IP x operator, busiest first: totals, last day, colour, sparkline."""
    from inboxops.reputation.metrics import Figures, colour

    table_rows: list[tuple[str | Text, ...]] = []
    pairs: dict[tuple[str, str], dict[date, Figures]] = {}
    for r in rows:
        label = f"{r.operator}/{r.segment}" if r.segment else r.operator
        pairs.setdefault((r.sending_ip, label), {})[r.day] = r.figures
    busiest = sorted(pairs.items(), key=lambda kv: -sum(f.attempts for f in kv[1].values()))
    for (ip, label), by_day in busiest[:limit]:
        total = Figures()
        for f in by_day.values():
            total.add(f)
        latest = by_day[max(by_day)]
        verdict = colour(latest, thresholds)
        rates = [by_day[d].delivery_rate if d in by_day else None for d in day_list]
        verdicts = [colour(by_day[d], thresholds) if d in by_day else None for d in day_list]
        rate = latest.delivery_rate
        table_rows.append(
            (
                ip,
                label,
                str(total.attempts),
                str(total.delivered),
                str(total.bounced + total.expired),
                str(total.throttled),
                str(total.policy_blocked),
                f"{rate:.1%}" if rate is not None else "-",
                styled(verdict or "-", _COLOURS.get(verdict or "", "")),
                _spark(rates, verdicts),
            )
        )
    print_table(
        console,
        f"Delivery per IP x operator, {day_list[0]} to {day_list[-1]} (UTC)"
        + (f", busiest {limit}" if limit is not None and len(busiest) > limit else ""),
        [
            Col("sending IP", "key"),
            Col("operator", "key"),
            Col("attempts", "number"),
            Col("delivered", "number"),
            Col("failed", "number"),
            Col("throttled", "number"),
            Col("blocked", "number"),
            Col("last day", "number"),
            Col("colour", "key"),
            Col("daily delivery", "key"),
        ],
        table_rows,
    )


@reputation.command("trend")
@window_options
@click.option("--ip", "ips", multiple=True, help="Only this sending IP (or syslog name).")
@click.option(
    "--operator", "operators", multiple=True, help="Only this operator (google, microsoft/365...)."
)
@json_option("Print one JSON object per day x IP x operator.")
@pass_app
def trend_cmd(
    app: AppContext,
    days: int | None,
    since: When | None,
    until: When | None,
    ips: tuple[str, ...],
    operators: tuple[str, ...],
    as_json: bool,
) -> None:
    """Daily delivery per sending IP x operator, SNDS-style: green, yellow or red per day.

    The terminal shows one line per IP x operator: totals over the window, the last day's
    delivery rate and colour, and a sparkline of the daily delivery rate coloured by verdict.
    The thresholds are in [reputation.colours] (docs/reputation.md).
    """
    from inboxops.reputation import report

    day_list = trend_days(app, days, since, until)
    rows = report.day_rows(
        app.engine(readonly=True), app.settings.reputation, day_list, ips=ips, operators=operators
    )
    thresholds = app.settings.reputation.colours
    if as_json:
        app.print_json([r.as_json(thresholds) for r in rows])
        return
    if not rows:
        first, last = report.held_days(app.engine(readonly=True))
        held = f"the store holds {first} to {last}" if first else "the store holds no days yet"
        say(app.console, f"no delivery attempts from {day_list[0]} to {day_list[-1]}; {held}")
        return
    print_trend(app.console, rows, day_list, thresholds)


def print_regressions(console: Console, alerts: Sequence[Regression]) -> None:
    """Each alert: headline, what to do, and the receiver's own words."""
    for a in alerts:
        style = "bold red" if a.kind != "rep_throttling" else "bold yellow"
        say(console, f"{a.kind} {a.headline()}", style)
        say(console, f"  {a.advice()}")
        if a.sample_reply:
            say(console, f"  reply: {a.sample_reply}")


@reputation.command("alert")
@click.option("--date", "day", type=WHEN, help="The day to judge (UTC; default yesterday).")
@click.option("--ip", "ips", multiple=True, help="Only this sending IP (or syslog name).")
@click.option("--operator", "operators", multiple=True, help="Only this operator.")
@click.option("--dry-run", is_flag=True, help="Evaluate and print; send nothing.")
@json_option("Print the alerts as a JSON list.")
@pass_app
def alert_cmd(
    app: AppContext,
    day: When | None,
    ips: tuple[str, ...],
    operators: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Alert on regressions of an IP x operator against its trailing baseline.

    \b
    Rules ([reputation.alerts], defaults):
      rep_delivery_drop  delivery rate 10+ points below the 7 days before
      rep_throttling     50+ throttled attempts and 3x the baseline's daily mean
      rep_policy_blocks  20+ policy blocks and 3x the baseline's daily mean
    Pairs with fewer than 50 attempts that day are not judged. Each alert names the IP, the
    operator, the day against the baseline and one real reply text. Silent when healthy;
    exit 3 when there are alerts.
    """
    from inboxops.reputation.alerting import check_regressions

    judged = day.at.date() if day is not None else app.clock().date() - timedelta(days=1)
    run = check_regressions(
        app.engine(),
        app.settings,
        judged,
        now=app.clock(),
        dry_run=dry_run,
        ips=ips,
        operators=operators,
    )
    if as_json:
        app.print_json([a.as_json() | {"suppressed": a in run.suppressed} for a in run.alerts])
    elif run.alerts:
        print_regressions(app.console, run.alerts)
        if run.sent_to:
            say(app.console, f"sent to: {', '.join(run.sent_to)}")
    else:
        say(app.console, f"healthy: no reputation regressions on {judged}")
    for kind, key in run.cleared:
        if not as_json:
            say(app.console, f"Resolved: {kind} for {key} (sent)", "green")
    if run.unsent_reason:
        say(app.err_console, f"warning: {run.unsent_reason}")
    if run.alerts:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


@reputation.command("prune")
@prune_options("attempts of days", "90d", "[reputation] retention_days")
@pass_app
def prune_cmd(app: AppContext, older_than: int | None, dry_run: bool, as_json: bool) -> None:
    """Delete stored delivery attempts past their retention; the daily trend stays.

    Every attempt is kept so that reruns and overlapping logs never double-count, and a busy
    fleet stores hundreds of thousands a day. What every view reads is the daily rollup, which
    a prune keeps: `trend`, `alert` and `health` show the same figures before and after.

    The days before the first kept day (today minus the age, UTC) are closed: an ingest of an
    old log skips their attempts (counted as past_retention) instead of rebuilding a closed
    day from the few it would see. Work goes one day per transaction, so an ingest in between
    waits seconds at most; an interrupted run is finished by the next.

    \b
    Examples:
      inboxops reputation prune --older-than 90d --dry-run
      inboxops reputation prune                 # uses [reputation] retention_days
    """
    from inboxops.reputation import prune
    from inboxops.retention import cutoff_for, retention_days

    days = retention_days(
        older_than, app.settings.reputation.retention_days, section="reputation", what="attempts"
    )
    first = prune.first_kept_day(cutoff_for(app.clock(), days))
    engine = app.engine(readonly=True)  # never create a database only to find it empty
    if dry_run:
        result = prune.count(engine, days, first)
    else:
        with progress_bar(app, "pruning days") as progress:
            result = prune.prune(engine, days, first, progress=progress, now=app.clock)
    if as_json:
        app.print_json(result.as_json())
        return
    verb = "would delete" if dry_run else "deleted"
    say(
        app.console,
        f"{verb} {result.counts['rep_attempts']} delivery attempt(s) from before "
        f"{result.first_day.isoformat()} ({days} days); the daily trend stays"
        + (" (dry run)" if dry_run else ""),
    )
    print_counts(app.console, result.counts, verb)
