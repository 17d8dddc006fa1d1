"""``inboxops exclusions check``: which exclusion rule an address or a domain falls under."""

from __future__ import annotations

from typing import Any

import click

from inboxops.cli.context import AppContext, json_option, pass_app
from inboxops.cli.render import Col, print_table

EXIT_PROBLEMS = 3


@click.group()
def exclusions() -> None:
    """The exclusion list ([exclusions] rules and files) that `inboxops listmonk scrub` applies."""


@exclusions.command("check")
@click.argument("items", nargs=-1, required=True, metavar="ADDRESS|DOMAIN...")
@click.option(
    "--offline", is_flag=True, help="Decide operator rules from the MX cache only; no DNS lookups."
)
@json_option("Print a JSON list on stdout.")
@pass_app
def check_cmd(app: AppContext, items: tuple[str, ...], offline: bool, as_json: bool) -> None:
    """Tell which rule matches each address or domain, if any; exit 3 when one matches.

    Domain and *. rules need nothing else; operator: rules need the domain's MX (from the
    cache, or looked up live unless --offline).

    \b
    Examples:
      inboxops exclusions check jane@icloud.com mail.example.com
      inboxops exclusions check --offline --json customer.example
    """
    from inboxops.hygiene.exclusions import domain_of
    from inboxops.hygiene.sources import load_exclusions
    from inboxops.operators.domains import DomainOperator, domain_classifier

    settings = app.settings
    rules = load_exclusions(settings.exclusions, settings.operators.rules)
    domains = {item: domain_of(item) for item in items}
    pending = sorted({d for d in domains.values() if d and rules.match_domain(d) is None})
    classified: dict[str, DomainOperator] = {}
    if rules.needs_operators and pending:
        classifier = domain_classifier(app.engine(), settings, offline=offline, clock=app.clock)
        classified = classifier.classify(pending, offline=offline)
    rows: list[dict[str, Any]] = []
    for item, domain in domains.items():
        op = classified.get(domain)
        rule = rules.match_domain(domain)
        if rule is None and op is not None and op.status == "ok":
            rule = rules.match_operator(op.operator, op.segment or None)
        rows.append(
            {
                "input": item,
                "domain": domain,
                "excluded": rule is not None,
                "rule": rule.text if rule else None,
                "origin": rule.origin if rule else None,
                "operator": op.label if op is not None else None,
                "status": op.status if op is not None else None,
            }
        )
    if as_json:
        app.print_json(rows)
    else:
        print_table(
            app.console,
            None,
            [
                Col("input", "key"),
                Col("rule", "key"),
                Col("from", "key"),
                Col("operator (MX)", "key"),
            ],
            [
                (
                    str(r["input"]),
                    str(r["rule"] or "-"),
                    str(r["origin"] or "-"),
                    _operator_cell(r["operator"], r["status"]),
                )
                for r in rows
            ],
        )
    if any(r["excluded"] for r in rows):
        raise click.exceptions.Exit(EXIT_PROBLEMS)


def _operator_cell(operator: str | None, status: str | None) -> str:
    if operator is None:
        return "-"
    return str(operator) if status == "ok" else f"{operator} ({status})"
