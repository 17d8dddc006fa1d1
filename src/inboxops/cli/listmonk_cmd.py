"""``inboxops listmonk``: list hygiene on every configured listmonk instance.

``scrub`` blocklists the enabled subscribers the exclusion list matches (daily, before the
campaign builders); ``prune`` unsubscribes from warmup lists the subscribers whose domain's MX
moved to an excluded operator (weekly); ``removals`` reads the log of both. The work is
:mod:`inboxops.hygiene`; this module reads the flags, builds the pieces and renders.
"""

from __future__ import annotations

import os
from typing import Any

import click

from inboxops.cli.context import AppContext, json_option, pass_app
from inboxops.cli.options import resolve_window, window_options
from inboxops.cli.progress import activity
from inboxops.cli.render import Col, print_table, say
from inboxops.window import When

EXIT_FAILURE = 1

_INSTANCE_HELP = "Only this instance (repeatable; default: every configured instance)."


@click.group()
def listmonk() -> None:
    """List hygiene on listmonk: scrub excluded domains, prune warmup lists.

    \b
    Typical schedule:
      30 5 * * *  inboxops listmonk scrub --sync-domain-blocklist    (before campaign builders)
      0 4 * * 1   inboxops listmonk prune --lists 'warmup-*' --exclude-operator google

    `inboxops listmonk removals` says who was taken off, when and why.
    """


@listmonk.command("scrub")
@click.option("--instance", "instances", multiple=True, metavar="NAME", help=_INSTANCE_HELP)
@click.option("--dry-run", is_flag=True, help="Read and report; change nothing on listmonk.")
@click.option(
    "--sync-domain-blocklist",
    is_flag=True,
    help="Also add the domain and *. rules to listmonk's privacy.domain_blocklist (kept "
    "entries stay), so sign-ups and imports from them are refused too.",
)
@json_option("Print the counts as JSON on stdout.")
@pass_app
def scrub_cmd(
    app: AppContext,
    instances: tuple[str, ...],
    dry_run: bool,
    sync_domain_blocklist: bool,
    as_json: bool,
) -> None:
    """Blocklist every enabled subscriber whose domain the exclusion list matches.

    The rules are [exclusions] rules and files: a domain (icloud.com), its subdomains
    (*.example.com) or an operator (operator:apple: any domain whose MX is Apple's). Subscribers
    are read 2,000 a request and blocklisted 2,000 a request; listmonk then unsubscribes them
    from every list. Safe to rerun at any time: what is blocklisted is not sent again. Exit 1
    when an instance failed (the others are still scrubbed).

    \b
    Examples:
      inboxops listmonk scrub --dry-run
      inboxops listmonk scrub --instance main --sync-domain-blocklist --json
    """
    from inboxops.config.hygiene import listmonk_instances
    from inboxops.errors import ConfigError
    from inboxops.hygiene.scrub import Scrubber
    from inboxops.hygiene.sources import load_exclusions
    from inboxops.operators.domains import domain_classifier

    settings = app.settings
    exclusions = load_exclusions(settings.exclusions, settings.operators.rules)
    if not exclusions:
        raise ConfigError(
            "the exclusion list is empty: nothing to scrub; add rules to [exclusions] rules or "
            "files"
        )
    targets = listmonk_instances(settings.listmonk, os.environ, instances)
    engine = app.engine() if not dry_run or exclusions.needs_operators else None
    domains = None
    if exclusions.needs_operators and engine is not None:
        domains = domain_classifier(engine, settings, offline=False, clock=app.clock)
    with activity(app, "scrub") as note:
        scrubber = Scrubber(
            exclusions,
            domains,
            engine,
            app.clock,
            dry_run=dry_run,
            sync_blocklist=sync_domain_blocklist,
            progress=note,
        )
        results = scrubber.run(targets)
    if as_json:
        app.print_json(
            {
                "dry_run": dry_run,
                "rules": len(exclusions),
                "instances": {r.instance: r.as_json() for r in results},
            }
        )
    else:
        _render_scrub(app, results, dry_run)
    _fail_if_errors(app, [(r.instance, r.error) for r in results])


def _render_scrub(app: AppContext, results: list[Any], dry_run: bool) -> None:
    title = "listmonk scrub (dry run: nothing changed)" if dry_run else "listmonk scrub"
    print_table(
        app.console,
        title,
        [
            Col("instance", "key"),
            Col("scanned", "number"),
            Col("matched", "number"),
            Col("blocklisted", "number"),
            Col("undecided", "number"),
        ],
        [
            (
                r.instance,
                str(r.scanned),
                str(r.matched),
                str(r.blocklisted),
                str(sum(r.undecided_subscribers.values())),
            )
            for r in results
            if r.error is None
        ],
    )
    rows = [(r.instance, rule, str(n)) for r in results for rule, n in sorted(r.by_rule.items())]
    if rows:
        print_table(
            app.console,
            "matches by rule",
            [Col("instance", "key"), Col("rule", "key"), Col("subscribers", "number")],
            rows,
        )
    for r in results:
        for domain, status in sorted(r.undecided.items()):
            say(
                app.console,
                f"{r.instance}: {domain} undecided ({status}): "
                f"{r.undecided_subscribers[domain]} subscribers left for a later run",
            )
        sync = r.domain_blocklist
        if sync is not None:
            if not sync.added:
                say(app.console, f"{r.instance}: domain blocklist already holds every rule")
            else:
                state = (
                    "would add"
                    if dry_run
                    else "added"
                    if sync.applied
                    else "saved (applied at listmonk's next reload: a campaign is running)"
                )
                say(
                    app.console,
                    f"{r.instance}: domain blocklist {state}: {', '.join(sync.added)}",
                )


@listmonk.command("prune")
@click.option(
    "--lists",
    "patterns",
    multiple=True,
    required=True,
    metavar="PATTERN",
    help="Lists to prune, by name: a glob such as 'warmup-*', case-insensitive (repeatable).",
)
@click.option("--instance", "instances", multiple=True, metavar="NAME", help=_INSTANCE_HELP)
@click.option(
    "--exclude-operator",
    "operators",
    multiple=True,
    required=True,
    metavar="OPERATOR",
    help="Remove subscribers whose domain's MX is now this operator's: an id as in "
    "`inboxops mx classify` (google, microsoft, yahoo...) or id/segment (google/consumer). "
    "Repeatable.",
)
@click.option("--refresh", is_flag=True, help="Look every domain's MX up live, not from cache.")
@click.option("--dry-run", is_flag=True, help="Read, classify and report; change nothing.")
@json_option("Print the counts and removals as JSON on stdout.")
@pass_app
def prune_cmd(
    app: AppContext,
    patterns: tuple[str, ...],
    instances: tuple[str, ...],
    operators: tuple[str, ...],
    refresh: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Unsubscribe from the matching lists the subscribers whose domain's MX is now hosted by
    an excluded operator.

    Only the MX decides: a domain whose lookup failed (NXDOMAIN, null MX, SERVFAIL, timeout)
    is reported and kept, and nobody is removed for any other reason. Only the matching lists
    are touched (the unsubscribe list action; never a blocklist). Every removal is logged with
    the domain's old and new operator and its MX host. Exit 1 when an instance failed.

    \b
    Examples:
      inboxops listmonk prune --lists 'warmup-*' --exclude-operator google --dry-run
      inboxops listmonk prune --lists warmup --exclude-operator google/consumer --refresh --json
    """
    from inboxops.config.hygiene import listmonk_instances
    from inboxops.hygiene.exclusions import Exclusions
    from inboxops.hygiene.prune import Pruner
    from inboxops.hygiene.sources import excluded_operators, known_operators
    from inboxops.operators.domains import domain_classifier

    settings = app.settings
    try:
        excluded = excluded_operators(operators, known_operators(settings.operators.rules))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--exclude-operator") from None
    targets = listmonk_instances(settings.listmonk, os.environ, instances)
    domains = domain_classifier(app.engine(), settings, offline=False, clock=app.clock)
    with activity(app, "prune") as note:
        pruner = Pruner(
            patterns,
            Exclusions(excluded),
            domains,
            app.clock,
            refresh=refresh,
            dry_run=dry_run,
            progress=note,
        )
        results = pruner.run(targets)
    answered = [r for r in results if r.error is None]
    if answered and not any(r.lists for r in answered):
        raise click.UsageError(
            f"no list matches --lists {' '.join(patterns)} on "
            + ", ".join(r.instance for r in answered)
            + "; `inboxops listmonk prune` matches list names (globs such as 'warmup-*')"
        )
    if as_json:
        app.print_json(
            {
                "dry_run": dry_run,
                "refresh": refresh,
                "lists": list(patterns),
                "exclude_operators": [rule.text.split(":", 1)[1] for rule in excluded],
                "instances": {r.instance: r.as_json() for r in results},
            }
        )
    else:
        _render_prune(app, results, dry_run)
    _fail_if_errors(app, [(r.instance, r.error) for r in results])


def _render_prune(app: AppContext, results: list[Any], dry_run: bool) -> None:
    title = "listmonk prune (dry run: nothing changed)" if dry_run else "listmonk prune"
    print_table(
        app.console,
        title,
        [
            Col("instance", "key"),
            Col("lists", "text"),
            Col("subscribers", "number"),
            Col("domains", "number"),
            Col("to remove" if dry_run else "removed", "number"),
            Col("lookup failures", "number"),
        ],
        [
            (
                r.instance,
                ", ".join(lst.name for lst in r.lists) or "-",
                str(r.scanned),
                str(r.domains),
                str(r.matched if dry_run else r.removed),
                str(len(r.failures)),
            )
            for r in results
            if r.error is None
        ],
    )
    removals = [(r.instance, x) for r in results for x in r.removals]
    if removals:
        print_table(
            app.console,
            "would be removed" if dry_run else "removed",
            [
                Col("instance", "key"),
                Col("subscriber", "key"),
                Col("list", "text"),
                Col("old", "key"),
                Col("now", "key"),
                Col("MX", "key"),
            ],
            [
                (
                    name,
                    x["email"],
                    x["list"],
                    x["old_operator"] or "-",
                    x["new_operator"],
                    x["mx_host"] or "-",
                )
                for name, x in removals
            ],
        )
    failures = [
        (r.instance, d, s, str(r.failed_members[d]))
        for r in results
        for d, s in sorted(r.failures.items())
    ]
    if failures:
        print_table(
            app.console,
            "lookup failures (kept: a failure is never a move)",
            [
                Col("instance", "key"),
                Col("domain", "key"),
                Col("status", "key"),
                Col("subscribers", "number"),
            ],
            failures,
        )


def _fail_if_errors(app: AppContext, errors: list[tuple[str, str | None]]) -> None:
    failed = [(name, error) for name, error in errors if error is not None]
    for name, error in failed:
        say(app.err_console, f"Error: {name}: {error}")
    if failed:
        raise click.exceptions.Exit(EXIT_FAILURE)


@listmonk.command("removals")
@window_options
@click.option("--instance", help="Only this instance.")
@click.option(
    "--address",
    metavar="ADDRESS|DOMAIN",
    help="Only this subscriber (user@example.com) or every subscriber of this domain.",
)
@json_option("Print one JSON object per removal on stdout.")
@pass_app
def removals_cmd(
    app: AppContext,
    days: int | None,
    since: When | None,
    until: When | None,
    instance: str | None,
    address: str | None,
    as_json: bool,
) -> None:
    """Who scrub and prune took off listmonk, when and why (default: the last 30 days).

    Every blocklisting by `scrub` (the exclusion rule that matched) and every unsubscription
    by `prune` (the list, the domain's old and new operator, its MX host) is logged as
    listmonk confirms it; a dry run logs nothing. The answer to "why did this subscriber
    stop getting our mail?".

    \b
    Examples:
      inboxops listmonk removals --address someone@icloud.com --days 365
      inboxops listmonk removals --since 2026-11-01 --instance main --json
    """
    from inboxops.hygiene.store import removals

    window = resolve_window(app, days, since, until, default_days=30)
    rows = removals(
        app.engine(readonly=True),
        instance=instance,
        since=window.since,
        until=window.until,
        address=address,
    )
    if as_json:
        app.print_json(
            [
                {
                    "at": r.at.isoformat() if r.at else None,
                    "instance": r.instance,
                    "subscriber_id": r.subscriber_id,
                    "email": r.email,
                    "domain": r.domain,
                    "action": r.action,
                    "reason": r.reason,
                    "rule": r.rule,
                    "list_id": r.list_id,
                    "list": r.list_name,
                    "old_operator": r.old_operator,
                    "new_operator": r.new_operator,
                    "mx_host": r.mx_host,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        say(app.console, f"no removals logged {window.describe()}")
        return
    print_table(
        app.console,
        f"removals {window.describe()}",
        [
            Col("when (UTC)", "key"),
            Col("instance", "key"),
            Col("subscriber", "key"),
            Col("action", "key"),
            Col("why", "text"),
            Col("list", "text"),
        ],
        [
            (
                f"{r.at:%Y-%m-%d %H:%M}" if r.at else "-",
                r.instance,
                r.email,
                r.action,
                _why(r),
                r.list_name or ("every list" if r.action == "blocklist" else "-"),
            )
            for r in rows
        ],
    )


def _why(r: Any) -> str:
    """``excluded by operator:apple`` or ``MX moved cloudmark -> yahoo (mx.cox.net)``."""
    if r.reason == "mx_operator":
        host = f" ({r.mx_host})" if r.mx_host else ""
        return f"MX moved {r.old_operator or '?'} -> {r.new_operator or '?'}{host}"
    return f"excluded by {r.rule}" if r.rule else r.reason
