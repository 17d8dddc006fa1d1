"""``inboxops mx``: which operator receives a domain's mail, and which domains moved.

The classification every capability uses (reputation, list hygiene): MX records from the DNS
cache or live lookups (``[dns] nameservers``), matched against the operator table plus
``[operators] rules``.
"""

from __future__ import annotations

from pathlib import Path

import click

from inboxops.cli.context import AppContext, json_option, pass_app
from inboxops.cli.options import WHEN
from inboxops.cli.render import Col, print_table, say
from inboxops.window import When

EXIT_PROBLEMS = 3


@click.group()
def mx() -> None:
    """MX-based operator classification: classify domains, seed the cache, list moves."""


@mx.command("classify")
@click.argument("domains", nargs=-1, required=True)
@click.option("--offline", is_flag=True, help="Answer from the cache only; no DNS lookups.")
@click.option("--refresh", is_flag=True, help="Look every domain up live, ignoring the cache.")
@json_option("Print a JSON list on stdout.")
@pass_app
def classify_cmd(
    app: AppContext, domains: tuple[str, ...], offline: bool, refresh: bool, as_json: bool
) -> None:
    """Show each domain's receiving operator and how it was decided.

    \b
    Examples:
      inboxops mx classify gmail.com example.com
      inboxops mx classify --refresh cox.net --json
    """
    from inboxops.operators.domains import domain_classifier

    classifier = domain_classifier(app.engine(), app.settings, offline=offline, clock=app.clock)
    results = classifier.classify(domains, offline=offline, refresh=refresh)
    rows = [results[d.strip().lower().rstrip(".")] for d in domains if d.strip()]
    if as_json:
        app.print_json(
            [
                {
                    "domain": r.domain,
                    "operator": r.operator,
                    "segment": r.segment or None,
                    "status": r.status,
                    "mx_host": r.mx_host,
                    "how": r.how,
                    "source": r.source,
                }
                for r in rows
            ]
        )
        return
    print_table(
        app.console,
        None,
        [
            Col("domain", "key"),
            Col("operator", "key"),
            Col("status", "key"),
            Col("from", "key"),
            Col("how"),
        ],
        [(r.domain, r.label, r.status, r.source, r.how) for r in rows],
    )


@mx.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option("Print the counts as JSON.")
@pass_app
def import_cmd(app: AppContext, path: Path, as_json: bool) -> None:
    """Seed the MX cache from a CSV of ``domain,mx_host`` rows, in preference order.

    One row per MX host; several rows for one domain give its MX set, the first row the most
    preferred. A header row ``domain,mx_host`` and ``#`` comments are skipped. Seeded answers
    are trusted for [dns] max_ttl seconds, then looked up live again. Exit 3 when rows were bad.
    """
    from inboxops.operators.domains import domain_classifier

    classifier = domain_classifier(app.engine(), app.settings, offline=True, clock=app.clock)
    result = classifier.import_csv(path, ttl=app.settings.dns.max_ttl)
    if as_json:
        app.print_json(
            {"domains": result.domains, "rows": result.rows, "bad_rows": result.bad_rows}
        )
    else:
        say(app.console, f"seeded {result.domains} domains from {result.rows} rows")
        for bad in result.bad_rows:
            say(app.err_console, f"skipped {bad}")
    if result.bad_rows:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


@mx.command("changes")
@click.option("--since", type=WHEN, required=True, help="Changes that started on or after DATE.")
@click.option("--moves-only", is_flag=True, help="Only operator-to-operator moves.")
@json_option("Print a JSON list on stdout.")
@pass_app
def changes_cmd(app: AppContext, since: When, moves_only: bool, as_json: bool) -> None:
    """Domains whose operator changed (cox.net: cox -> yahoo), oldest first.

    A lookup failure is never a change; a domain that starts answering NXDOMAIN or a null MX
    is listed (it is news) but is not a "move" (see --moves-only).
    """
    from inboxops.operators.domains import history_changes

    changes = history_changes(app.engine(readonly=True), since.at)
    if moves_only:
        changes = [c for c in changes if c.moved]
    if as_json:
        app.print_json(
            [
                {
                    "domain": c.domain,
                    "at": c.at.isoformat(),
                    "old_operator": c.old_operator,
                    "new_operator": c.new_operator,
                    "old_status": c.old_status,
                    "new_status": c.new_status,
                    "mx_host": c.mx_host,
                    "moved": c.moved,
                }
                for c in changes
            ]
        )
        return
    if not changes:
        say(app.console, f"no MX changes since {since.at:%Y-%m-%d %H:%M} UTC")
        return
    print_table(
        app.console,
        f"MX changes since {since.at:%Y-%m-%d %H:%M} UTC",
        [
            Col("when (UTC)", "key"),
            Col("domain", "key"),
            Col("from", "key"),
            Col("to", "key"),
            Col("MX", "key"),
        ],
        [
            (
                f"{c.at:%Y-%m-%d %H:%M}",
                c.domain,
                c.old_operator or c.old_status,
                c.new_operator or c.new_status,
                c.mx_host or "-",
            )
            for c in changes
        ],
    )
