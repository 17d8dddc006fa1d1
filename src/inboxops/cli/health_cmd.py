"""``inboxops health``: the end-of-day check per pool, silent on healthy days."""

from __future__ import annotations

from datetime import timedelta

import click

from inboxops.cli.context import AppContext, json_option, pass_app
from inboxops.cli.options import WHEN
from inboxops.cli.render import Col, print_table, say, styled
from inboxops.window import When

EXIT_PROBLEMS = 3


@click.group(invoke_without_command=True)
@click.option("--date", "day", type=WHEN, help="The day to check (UTC; default today so far).")
@click.option("--pool", "pools", multiple=True, help="Only this pool ([reputation.pools]).")
@click.option("--dry-run", is_flag=True, help="Check and print; send nothing, record nothing.")
@json_option("Print one JSON object per pool.")
@click.pass_context
def health(
    ctx: click.Context, day: When | None, pools: tuple[str, ...], dry_run: bool, as_json: bool
) -> None:
    """The end-of-day health check of each sending pool: alerts only when something is wrong.

    A pool (``[reputation.pools]``, globs on syslog names; one pool "all" without any) is
    unhealthy when its delivery rate is below [health] min_delivery_rate (65%) or its policy
    blocks exceed [health] max_policy_blocks (150) for the day. External recipients only.
    Every run is recorded (`inboxops health history`). Silent when healthy under cron (a line
    on a terminal), exit 3 when unhealthy.

    \b
    Schedule:
      0 20 * * *  inboxops health
    """
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(AppContext)
    assert app is not None
    from inboxops.reputation.alerting import check_health
    from inboxops.reputation.report import pool_names

    settings = app.settings
    known = pool_names(settings.reputation)
    unknown = [p for p in pools if p not in known]
    if unknown:
        raise click.BadParameter(
            f"unknown pool {unknown[0]!r}; configured: {', '.join(known)}", param_hint="--pool"
        )
    checked = day.at.date() if day is not None else app.clock().date()
    results, delivery = check_health(
        app.engine(),
        settings,
        checked,
        list(pools) or known,
        now=app.clock(),
        dry_run=dry_run,
        repeat_hours=settings.reputation.alerts.repeat_hours,
    )
    unhealthy = [r for r in results if r.alerts]
    if as_json:
        app.print_json(
            {
                "date": checked.isoformat(),
                "healthy": not unhealthy,
                "pools": [r.as_json() for r in results],
                "alerts": [a.message for r in results for a in r.alerts],
                "sent_to": delivery.sent_to,
            }
        )
    elif unhealthy:
        for r in unhealthy:
            for a in r.alerts:
                say(app.console, a.message, "bold red")
        if delivery.sent_to:
            say(app.console, f"sent to: {', '.join(delivery.sent_to)}")
    elif app.interactive():
        summary = "; ".join(
            f"{r.pool} {r.figures.delivery_rate:.1%}"
            if r.figures.delivery_rate is not None
            else f"{r.pool} -"
            for r in results
        )
        say(app.err_console, f"healthy on {checked}: {summary}")
    if delivery.unsent_reason:
        say(app.err_console, f"warning: {delivery.unsent_reason}")
    if unhealthy:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


@health.command("history")
@click.option("--days", type=click.IntRange(1, 3660), default=30, show_default=True)
@click.option("--pool", "pools", multiple=True, help="Only this pool.")
@json_option("Print a JSON list on stdout.")
@pass_app
def history_cmd(app: AppContext, days: int, pools: tuple[str, ...], as_json: bool) -> None:
    """Past health checks, newest first: what each run saw and whether it alerted."""
    from inboxops.reputation.report import health_history

    since = app.clock().date() - timedelta(days=days)
    runs = health_history(app.engine(readonly=True), since, pools)
    if as_json:
        app.print_json(runs)
        return
    if not runs:
        say(app.console, f"no health checks recorded since {since}")
        return
    print_table(
        app.console,
        f"Health checks since {since}",
        [
            Col("run at (UTC)", "key"),
            Col("day", "key"),
            Col("pool", "key"),
            Col("delivered", "number"),
            Col("bounced", "number"),
            Col("expired", "number"),
            Col("pending", "number"),
            Col("delivery", "number"),
            Col("blocks", "number"),
            Col("verdict", "key"),
        ],
        [
            (
                str(r["run_at"])[:16],
                str(r["date"]),
                str(r["pool"]),
                str(r["delivered"]),
                str(r["bounced"]),
                str(r["expired"]),
                str(r["pending"]),
                f"{r['delivery_rate']:.1%}" if r["delivery_rate"] is not None else "-",
                str(r["policy_blocked"]),
                styled("healthy", "green") if r["healthy"] else styled("alert", "red"),
            )
            for r in runs
        ],
    )
