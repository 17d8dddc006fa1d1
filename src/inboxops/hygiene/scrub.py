"""``inboxops listmonk scrub``: blocklist every enabled subscriber the exclusion list matches.

Per instance, in three steps:

1. **Read** every enabled subscriber once, ascending by id (``subscribers.status = 'enabled'``
   paged by ``subscribers.id > last``, see :meth:`ListmonkClient.iter_subscribers`): 2,000 a
   request. An API user without ``subscribers:sql_query`` (v5+) reads everyone instead, by
   overlapping offset windows, and the status is checked here.
2. **Decide** (pure, :func:`plan`): domain and ``*.`` rules first; for the rest, when there are
   ``operator:`` rules, the domain's operator from the MX cache (one lookup per domain, not per
   subscriber). A domain whose MX could not be looked up (SERVFAIL, timeout) is reported as
   undecided and left alone until a later run can decide it.
3. **Blocklist** the matches in batches (``PUT /api/subscribers/blocklist``, 2,000 ids a
   request); each batch listmonk confirmed is written to the removals log at once.

Idempotent and safe to interrupt: a blocklisted subscriber is no longer enabled, so a rerun
never sends it again and picks up exactly what an interrupted run (a 503 beyond the retries, a
server that went away) left: nothing is blocklisted twice, nothing is skipped. ``dry_run``
reads and decides, and changes nothing anywhere.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from inboxops.errors import ListmonkError
from inboxops.hygiene.exclusions import Exclusions, Rule, domain_of
from inboxops.hygiene.instances import Connect, each_instance
from inboxops.hygiene.progress import Note, counted
from inboxops.hygiene.store import Removal, record_removals
from inboxops.listmonk import BATCH_SIZE, ListmonkClient, ListmonkInstance, Subscriber
from inboxops.listmonk.api import PermissionDenied
from inboxops.listmonk.client import SQL_QUERY
from inboxops.operators.domains import DomainClassifier, DomainOperator

log = logging.getLogger(__name__)

ENABLED = "subscribers.status = 'enabled'"
DOMAIN_BLOCKLIST = "privacy.domain_blocklist"
# a domain without an answer says nothing about its operator: decided by a later run
UNDECIDED = frozenset({"servfail", "timeout", "error", "not_cached"})


@dataclass(frozen=True)
class Target:
    """An enabled subscriber, as far as the scrub needs one."""

    id: int
    email: str
    domain: str


@dataclass
class Plan:
    """What to blocklist and why; ``undecided`` maps a domain to its DNS status."""

    matches: list[tuple[Target, Rule]] = field(default_factory=list)
    undecided: dict[str, str] = field(default_factory=dict)
    undecided_subscribers: Counter[str] = field(default_factory=Counter)


def plan(
    targets: Iterable[Target],
    exclusions: Exclusions,
    operators: Mapping[str, DomainOperator] | None = None,
) -> Plan:
    """Pure: which targets a rule matches (``operators``: the classification of the domains
    no domain rule matched, needed only when there are operator rules)."""
    out = Plan()
    for target in targets:
        rule = exclusions.match_domain(target.domain)
        if rule is None and exclusions.needs_operators and operators is not None:
            op = operators.get(target.domain)
            if op is None or op.status in UNDECIDED:
                out.undecided[target.domain] = op.status if op is not None else "not_cached"
                out.undecided_subscribers[target.domain] += 1
            elif op.status == "ok":
                rule = exclusions.match_operator(op.operator, op.segment or None)
        if rule is not None:
            out.matches.append((target, rule))
    return out


def _targets(subscribers: Iterable[Subscriber]) -> list[Target]:
    """The enabled ones, kept small (100,000 whole subscribers would hold their lists too)."""
    return [Target(s.id, s.email, domain_of(s.email)) for s in subscribers if s.status == "enabled"]


@dataclass
class BlocklistSync:
    """``--sync-domain-blocklist``: entries added to listmonk's own domain blocklist."""

    added: list[str]
    present: int  # entries listmonk already had
    applied: bool  # every entry in effect; False: a dry run, or saved for listmonk's next reload

    def as_json(self) -> dict[str, Any]:
        return {"added": self.added, "present": self.present, "applied": self.applied}


@dataclass
class InstanceScrub:
    """What the scrub did on one instance (the ``--json`` object per instance)."""

    instance: str
    scanned: int = 0
    matched: int = 0
    blocklisted: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    undecided: dict[str, str] = field(default_factory=dict)
    undecided_subscribers: Counter[str] = field(default_factory=Counter)
    domain_blocklist: BlocklistSync | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned,
            "matched": self.matched,
            "blocklisted": self.blocklisted,
            "by_rule": dict(sorted(self.by_rule.items())),
            "undecided": [
                {"domain": d, "status": s, "subscribers": self.undecided_subscribers[d]}
                for d, s in sorted(self.undecided.items())
            ],
            "domain_blocklist": self.domain_blocklist.as_json() if self.domain_blocklist else None,
            "error": self.error,
        }


@dataclass
class Scrubber:
    """The scrub of any number of instances with one exclusion list.

    ``domains`` classifies domains for operator rules (``None`` when there are none);
    ``engine`` receives the removals log (``None`` only for a dry run); ``connect`` makes a
    client for an instance (tests inject retries without sleeping).
    """

    exclusions: Exclusions
    domains: DomainClassifier | None
    engine: Engine | None
    clock: Callable[[], datetime]
    connect: Connect = ListmonkClient
    dry_run: bool = False
    sync_blocklist: bool = False
    batch_size: int = BATCH_SIZE
    progress: Note | None = None  # a terminal's progress line (the CLI's); None under cron

    def run(self, instances: Sequence[ListmonkInstance]) -> list[InstanceScrub]:
        """Every instance in turn; one that fails is reported and the next one still runs."""
        if self.exclusions.needs_operators and self.domains is None:
            raise ValueError("operator rules need a DomainClassifier")
        if not self.dry_run and self.engine is None:
            raise ValueError("a scrub that blocklists needs the database for its log")
        return each_instance(instances, self.connect, InstanceScrub, self._scrub, "scrub")

    def _scrub(self, client: ListmonkClient, result: InstanceScrub) -> None:
        name = client.instance.name
        targets = self._enabled(client)
        result.scanned = len(targets)
        operators = None
        if self.exclusions.needs_operators and self.domains is not None:
            unmatched = {
                t.domain for t in targets if self.exclusions.match_domain(t.domain) is None
            }
            operators = self.domains.classify(unmatched)
        decided = plan(targets, self.exclusions, operators)
        result.matched = len(decided.matches)
        result.by_rule.update(rule.text for _, rule in decided.matches)
        result.undecided = decided.undecided
        result.undecided_subscribers = decided.undecided_subscribers
        if not self.dry_run:
            self._blocklist(client, decided.matches, result)
        log.info(
            "event=listmonk_scrub instance=%s scanned=%d matched=%d blocklisted=%d undecided=%d "
            "dry_run=%s",
            name,
            result.scanned,
            result.matched,
            result.blocklisted,
            len(result.undecided),
            self.dry_run,
        )
        if self.sync_blocklist:
            result.domain_blocklist = self._sync(client)

    def _enabled(self, client: ListmonkClient) -> list[Target]:
        """Every enabled subscriber, read once; by query, or everyone without sql_query."""
        what = f"subscribers of {client.instance.name} read"
        try:
            return _targets(counted(client.iter_subscribers(query=ENABLED), self.progress, what))
        except PermissionDenied as exc:
            if exc.permission != SQL_QUERY:
                raise
            log.info("event=listmonk_scrub_reads_all instance=%s", client.instance.name)
            return _targets(counted(client.iter_subscribers(), self.progress, what))

    def _blocklist(
        self, client: ListmonkClient, matches: list[tuple[Target, Rule]], result: InstanceScrub
    ) -> None:
        assert self.engine is not None
        size = self.batch_size
        for start in range(0, len(matches), size):
            chunk = matches[start : start + size]
            client.blocklist([t.id for t, _ in chunk], batch_size=size)
            result.blocklisted += len(chunk)
            if self.progress is not None:
                self.progress(
                    f"{result.blocklisted:,} of {len(matches):,} blocklisted on "
                    f"{client.instance.name}"
                )
            record_removals(
                self.engine,
                [
                    Removal(
                        client.instance.name,
                        t.id,
                        t.email,
                        t.domain,
                        "blocklist",
                        "excluded",
                        rule=rule.text,
                    )
                    for t, rule in chunk
                ],
                self.clock(),
            )

    def _sync(self, client: ListmonkClient) -> BlocklistSync:
        """Merge the domain and ``*.`` rules into listmonk's domain blocklist (keeping what is
        there); no write when nothing is missing, since every settings change reloads listmonk."""
        current = client.get_settings().get(DOMAIN_BLOCKLIST)
        if not isinstance(current, list):
            raise ListmonkError(
                f"listmonk instance {client.instance.name} has no {DOMAIN_BLOCKLIST} setting; "
                "it needs listmonk v2.0 or later"
            )
        present = {str(entry).strip().lower().rstrip(".") for entry in current}
        added = [e for e in self.exclusions.blocklist_entries() if e not in present]
        applied = not added  # nothing missing: already in effect
        if added and not self.dry_run:
            applied = client.update_settings({DOMAIN_BLOCKLIST: [*current, *added]})
            log.info(
                "event=listmonk_domain_blocklist instance=%s added=%d applied=%s",
                client.instance.name,
                len(added),
                applied,
            )
        return BlocklistSync(added, len(current), applied)
