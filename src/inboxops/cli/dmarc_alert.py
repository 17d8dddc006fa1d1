"""``inboxops dmarc alert``, and the alert rendering ``dmarc fetch --alert`` and the demo share.

Own IPs below the pass-rate floor and spoofing alert loudly; forwarding (mailing lists,
forwarders breaking SPF and DKIM) goes to a quieter digest. The rules are
:mod:`inboxops.dmarc.rules`; delivery and repeat/resolve state :mod:`inboxops.dmarc.alerting`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from inboxops.cli.context import AppContext, json_option, pass_app
from inboxops.cli.dmarc_cmd import EXIT_PROBLEMS, dmarc, dmarc_window, offline_option
from inboxops.cli.options import window_options
from inboxops.cli.render import say
from inboxops.errors import NotifyError
from inboxops.window import When, Window

if TYPE_CHECKING:
    from rich.console import Console

    from inboxops.dmarc.alerting import AlertRun
    from inboxops.dmarc.rules import Alert


def run_alerts(
    app: AppContext, window: Window, *, domain: str | None, dry_run: bool, offline: bool = False
) -> AlertRun:
    from inboxops.dmarc import alerting

    try:
        return alerting.check(
            app.engine(),
            app.settings,
            window,
            dry_run=dry_run,
            now=app.clock(),
            domain=domain,
            offline=offline,
        )
    except NotifyError as exc:
        raise NotifyError(
            f"{exc}; check the channels with `inboxops notify test`",
            sent=exc.sent,
            failed=exc.failed,
        ) from None


def alerts_json(run: AlertRun) -> list[dict[str, object]]:
    """The alerts of a run as ``--json`` prints them: loud ones, then the digest's."""
    return [a.as_json() | {"suppressed": a in run.suppressed} for a in run.alerts] + [
        a.as_json() | {"digest": True, "suppressed": a in run.digest_suppressed} for a in run.digest
    ]


def print_run(app: AppContext, run: AlertRun) -> None:
    print_alerts(app.console, run.alerts)
    if run.digest:
        from inboxops.dmarc.rules import headline

        say(
            app.console,
            f"forwarding digest ({len(run.digest)} relay(s) of your own mail; not spoofing):",
            "bold cyan",
        )
        for a in run.digest:
            say(app.console, f"  {headline(a)}", "cyan")
    if run.enrich_warning:
        say(app.err_console, f"warning: {run.enrich_warning}", "yellow")
    if run.sent_to:
        say(app.console, f"sent to: {', '.join(run.sent_to)}")
    if run.suppressed:
        say(
            app.console,
            f"{len(run.suppressed)} alert(s) already sent and not yet due again "
            "([dmarc.alerts] repeat_hours)",
        )


@dmarc.command()
@window_options
@click.option("--domain", help="Only reports about this domain (and its subdomains).")
@click.option("--dry-run", is_flag=True, help="Evaluate and print; send nothing.")
@offline_option
@json_option("Print the alerts as a JSON list.")
@pass_app
def alert(
    app: AppContext,
    days: int | None,
    since: When | None,
    until: When | None,
    domain: str | None,
    dry_run: bool,
    offline: bool,
    as_json: bool,
) -> None:
    """Alert when an own IP falls below the pass-rate floor or another IP spoofs our domain.

    \b
    Rules (thresholds in [dmarc.alerts]):
      own_ip_failing  an own IP/CIDR below 95% DMARC pass over the window
      spoofing        a foreign IP with 20 or more failing messages as our domain
      forwarding      the same, but classified as forwarded (forwarders, mailing lists):
                      a quieter digest by default ([dmarc.alerts] forwarding)
    Every alert names the IP's PTR and sending service. Nothing is sent when all is healthy.
    Exit code 3 when there are alerts (the digest alone does not count), 0 when healthy.
    """
    window = dmarc_window(app, days, since, until)
    run = run_alerts(app, window, domain=domain, dry_run=dry_run, offline=offline)
    if as_json:
        app.print_json(alerts_json(run))
    elif run.alerts or run.digest:
        print_run(app, run)
        if not run.alerts:
            say(app.console, f"no DMARC alerts for {run.window.describe()}")
    else:
        say(app.console, f"healthy: no DMARC alerts for {run.window.describe()}")
    if (run.cleared or run.digest_cleared) and not as_json:
        from inboxops.dmarc.rules import cleared_line

        for kind, ip in run.cleared + run.digest_cleared:
            say(app.console, f"{cleared_line(kind, ip)} (sent)", "green")
    if run.unsent_reason:
        say(app.err_console, f"warning: {run.unsent_reason}")
    if run.alerts:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


def print_alerts(console: Console, alerts: Sequence[Alert]) -> None:
    """Alerts as short blocks: a headline, then what to check (tables wrap advice badly)."""
    from inboxops.dmarc.rules import headline

    for a in alerts:
        colour = {"own_ip_failing": "red", "forwarding": "cyan"}.get(a.kind, "yellow")
        say(console, f"{a.kind} {headline(a)}", f"bold {colour}")
        say(console, f"  {a.advice}")
