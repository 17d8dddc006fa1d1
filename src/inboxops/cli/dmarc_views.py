"""``inboxops dmarc tls | failures | quarantine``: what else the reports mailbox holds.

Aggregate reports answer "is my mail authenticated?"; these views answer the neighbouring
questions: can senders reach us over TLS (RFC 8460), which individual messages failed (ruf),
and what did we refuse to store, and why.
"""

from __future__ import annotations

from pathlib import Path

import click

from inboxops.cli.context import AppContext, json_option, pass_app
from inboxops.cli.dmarc_cmd import dmarc, dmarc_window
from inboxops.cli.options import window_options
from inboxops.cli.render import Col, print_table, say
from inboxops.errors import ConfigError
from inboxops.window import When


@dmarc.command("tls")
@window_options
@click.option("--domain", help="Only this policy domain.")
@json_option("Print a JSON list on stdout.")
@pass_app
def tls_cmd(
    app: AppContext,
    days: int | None,
    since: When | None,
    until: When | None,
    domain: str | None,
    as_json: bool,
) -> None:
    """SMTP TLS reports (RFC 8460): sessions that reached our MX over TLS, and why others failed.

    A rise in failures (certificate-expired, validation-failure, sts-policy-fetch-error...)
    means senders cannot deliver securely, and under an enforced MTA-STS policy cannot deliver.
    """
    from inboxops.dmarc.summary import tls_stats

    window = dmarc_window(app, days, since, until)
    stats = tls_stats(app.engine(readonly=True), window, domain)
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
        say(app.console, f"no SMTP TLS reports for {window.describe()}")
        return
    print_table(
        app.console,
        f"SMTP TLS, {window.describe()}",
        [
            Col("policy domain", "key"),
            Col("type", "key"),
            Col("ok", "number"),
            Col("failed", "number"),
            Col("failure types"),
            Col("reporters"),
        ],
        [
            (
                t.policy_domain,
                t.policy_type,
                str(t.successful),
                str(t.failed),
                ", ".join(f"{k} ({n})" for k, n in t.failures[:3]) or "-",
                ", ".join(t.reporters[:3]),
            )
            for t in stats
        ],
    )


@dmarc.command("failures")
@window_options
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option("Print a JSON list on stdout.")
@pass_app
def failures_cmd(
    app: AppContext,
    days: int | None,
    since: When | None,
    until: When | None,
    limit: int,
    as_json: bool,
) -> None:
    """DMARC failure (ruf) reports, newest first: single messages that failed, with their source.

    Few receivers send these; when they do, the subject and envelope sender show whether a
    failing stream is yours (fix its signing) or someone else's (spoofing).
    """
    from inboxops.dmarc.summary import failure_rows

    window = dmarc_window(app, days, since, until)
    rows = failure_rows(app.engine(readonly=True), window, limit)
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
        say(app.console, f"no failure reports for {window.describe()}")
        return
    print_table(
        app.console,
        f"DMARC failure reports, {window.describe()}",
        [
            Col("arrived (UTC)", "key"),
            Col("source IP", "key"),
            Col("domain", "key"),
            Col("failed"),
            Col("mail from"),
            Col("subject"),
        ],
        [
            (
                f"{r.arrival_date:%Y-%m-%d %H:%M}" if r.arrival_date else "-",
                r.source_ip or "-",
                r.reported_domain or "-",
                r.auth_failure or "-",
                r.original_mail_from or "-",
                (r.subject or "-")[:60],
            )
            for r in rows
        ],
    )


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
@click.option("--force", is_flag=True, help="Let --export overwrite an existing file.")
@json_option("Print a JSON list on stdout.")
@pass_app
def quarantine_cmd(
    app: AppContext,
    limit: int,
    export_id: int | None,
    export_to: Path | None,
    force: bool,
    as_json: bool,
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
        if export_to.exists() and not force:
            raise ConfigError(f"{export_to} already exists; use --force to overwrite it")
        data = quarantine.raw_bytes(app.engine(readonly=True), export_id)
        if data is None:
            raise ConfigError(
                f"quarantine entry {export_id} has no stored bytes (unknown id, or too large "
                "to keep); see `inboxops dmarc quarantine`"
            )
        export_to.write_bytes(data)
        if as_json:
            app.print_json({"id": export_id, "bytes": len(data), "path": str(export_to)})
        else:
            say(app.console, f"wrote {len(data)} bytes to {export_to}")
        return
    items = quarantine.entries(app.engine(readonly=True), limit)
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
        say(app.console, "quarantine is empty")
        return
    print_table(
        app.console,
        "Quarantined inputs (newest first)",
        [
            Col("id", "number"),
            Col("stored", "key"),
            Col("source"),
            Col("reason"),
            Col("bytes", "number"),
        ],
        [
            (str(e.id), f"{e.stored_at:%Y-%m-%d %H:%M}", e.source, e.reason, str(e.size))
            for e in items
        ],
    )
