"""``inboxops dmarc tls | failures | quarantine``: what else the reports mailbox holds.

Aggregate reports answer "is my mail authenticated?"; these views answer the neighbouring
questions: can senders reach us over TLS (RFC 8460), which individual messages failed (ruf),
and what did we refuse to store, and why.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from rich.table import Table

from inboxops.cli.context import AppContext
from inboxops.cli.dmarc_cmd import dmarc, resolve_window, window_options
from inboxops.errors import ConfigError

pass_app = click.make_pass_decorator(AppContext)


@dmarc.command("tls")
@window_options
@click.option("--domain", help="Only this policy domain.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list on stdout.")
@pass_app
def tls_cmd(
    app: AppContext,
    days: int | None,
    since: datetime | None,
    until: datetime | None,
    domain: str | None,
    as_json: bool,
) -> None:
    """SMTP TLS reports (RFC 8460): sessions that reached our MX over TLS, and why others failed.

    A rise in failures (certificate-expired, validation-failure, sts-policy-fetch-error...)
    means senders cannot deliver securely, and under an enforced MTA-STS policy cannot deliver.
    """
    from inboxops.dmarc.summary import tls_stats

    window = resolve_window(app, days, since, until)
    stats = tls_stats(app.engine(), window, domain)
    if as_json:
        app.print_json(
            [
                {
                    "policy_domain": t.policy_domain,
                    "policy_type": t.policy_type,
                    "successful": t.successful,
                    "failed": t.failed,
                    "failure_rate": round(t.failure_rate, 4),
                    "reporters": list(t.reporters),
                    "failures": [{"result_type": k, "sessions": n} for k, n in t.failures],
                }
                for t in stats
            ]
        )
        return
    if not stats:
        app.console.print(f"no SMTP TLS reports for {window.describe()}", highlight=False)
        return
    table = Table(title=f"SMTP TLS, {window.describe()}")
    for col in ("policy domain", "type", "ok", "failed", "failure types", "reporters"):
        table.add_column(col, justify="right" if col in ("ok", "failed") else "left")
    for t in stats:
        kinds = ", ".join(f"{k} ({n})" for k, n in t.failures[:3]) or "-"
        table.add_row(
            t.policy_domain,
            t.policy_type,
            str(t.successful),
            str(t.failed),
            kinds,
            ", ".join(t.reporters[:3]),
        )
    app.console.print(table)


@dmarc.command("failures")
@window_options
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list on stdout.")
@pass_app
def failures_cmd(
    app: AppContext,
    days: int | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """DMARC failure (ruf) reports, newest first: single messages that failed, with their source.

    Few receivers send these; when they do, the subject and envelope sender show whether a
    failing stream is yours (fix its signing) or someone else's (spoofing).
    """
    from inboxops.dmarc.summary import failure_rows

    window = resolve_window(app, days, since, until)
    rows = failure_rows(app.engine(), window, limit)
    if as_json:
        app.print_json(
            [
                {
                    "arrival_date": r.arrival_date.isoformat() if r.arrival_date else None,
                    "source_ip": r.source_ip,
                    "reported_domain": r.reported_domain,
                    "auth_failure": r.auth_failure,
                    "original_mail_from": r.original_mail_from,
                    "subject": r.subject,
                    "reporter": r.reporter,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        app.console.print(f"no failure reports for {window.describe()}", highlight=False)
        return
    table = Table(title=f"DMARC failure reports, {window.describe()}")
    for col in ("arrived (UTC)", "source IP", "domain", "failed", "mail from", "subject"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            f"{r.arrival_date:%Y-%m-%d %H:%M}" if r.arrival_date else "-",
            r.source_ip or "-",
            r.reported_domain or "-",
            r.auth_failure or "-",
            r.original_mail_from or "-",
            (r.subject or "-")[:60],
        )
    app.console.print(table)


@dmarc.command("quarantine")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--export",
    "export_id",
    type=int,
    metavar="ID",
    help="Write the raw bytes of entry ID to --to (for a closer look or a re-import).",
)
@click.option(
    "--to",
    "export_to",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Destination file for --export.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list on stdout.")
@pass_app
def quarantine_cmd(
    app: AppContext, limit: int, export_id: int | None, export_to: Path | None, as_json: bool
) -> None:
    """List refused inputs (newest first) with their reasons; export one for inspection.

    \b
    Examples:
      inboxops dmarc quarantine
      inboxops dmarc quarantine --export 12 --to suspicious.bin
    """
    from inboxops.dmarc import quarantine

    if export_id is not None:
        if export_to is None:
            raise click.UsageError("--export needs --to FILE")
        data = quarantine.raw_bytes(app.engine(), export_id)
        if data is None:
            raise ConfigError(
                f"quarantine entry {export_id} has no stored bytes (unknown id, or too large "
                "to keep); see `inboxops dmarc quarantine`"
            )
        export_to.write_bytes(data)
        click.echo(f"wrote {len(data)} bytes to {export_to}")
        return
    items = quarantine.entries(app.engine(), limit)
    if as_json:
        app.print_json(
            [
                {
                    "id": e.id,
                    "source": e.source,
                    "reason": e.reason,
                    "size": e.size,
                    "raw_kept": e.has_raw,
                    "stored_at": e.stored_at.isoformat(),
                }
                for e in items
            ]
        )
        return
    if not items:
        app.console.print("quarantine is empty")
        return
    table = Table(title="Quarantined inputs (newest first)")
    for col in ("id", "stored", "source", "reason", "bytes"):
        table.add_column(col, overflow="fold")
    for e in items:
        table.add_row(str(e.id), f"{e.stored_at:%Y-%m-%d %H:%M}", e.source, e.reason, str(e.size))
    app.console.print(table)
