"""``inboxops listmonk prune``: take off warmup lists the subscribers whose domain's MX is now
hosted by an operator we exclude (cox.net moving to Yahoo, a company moving to Google).

Per instance:

1. the lists whose name matches a ``--lists`` pattern (a glob, case-insensitive);
2. every subscriber with a subscription to one of them that is not already unsubscribed (read
   once, ascending by id, however many of the lists it is on);
3. each of their domains classified through the MX cache (TTL) or live (``refresh``);
4. **the one reason to remove** (pure, :func:`plan`): the domain's MX answered (status ``ok``)
   and its operator (or operator/segment) is excluded. A lookup that failed (NXDOMAIN, a null MX,
   SERVFAIL, a timeout, no MX) is reported and never counts as a move; nothing else about a
   subscriber (its status, activity, other lists, the exclusion list) is looked at;
5. the subscription to *that list* unsubscribed (``PUT /api/subscribers/lists`` with the
   ``unsubscribe`` action, in batches): the subscriber's other lists and its own status are
   untouched, and nobody is blocklisted. Each confirmed batch goes to the removals log with the
   domain's old operator (:func:`~inboxops.hygiene.store.previous_operators`), the new one and
   the MX host that decided.

Idempotent: an unsubscribed subscription is not read again, so a rerun after a failure picks up
exactly what is left. ``dry_run`` reads, classifies and reports, and changes nothing on listmonk
nor in the removals log (MX answers it looked up are cached, as every lookup is).
"""

from __future__ import annotations

import fnmatch
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inboxops.hygiene.exclusions import Exclusions, Rule, domain_of
from inboxops.hygiene.instances import Connect, each_instance
from inboxops.hygiene.progress import Note, counted
from inboxops.hygiene.store import Removal, previous_operators, record_removals
from inboxops.listmonk import BATCH_SIZE, ListmonkClient, ListmonkInstance, MailingList
from inboxops.operators.domains import DomainClassifier, DomainOperator

log = logging.getLogger(__name__)


def matching_lists(lists: Iterable[MailingList], patterns: Sequence[str]) -> list[MailingList]:
    """Lists whose name matches one of the globs (``warmup-*``), case-insensitively, by id."""
    globs = [p.strip().lower() for p in patterns if p.strip()]
    return sorted(
        (lst for lst in lists if any(fnmatch.fnmatchcase(lst.name.lower(), g) for g in globs)),
        key=lambda lst: lst.id,
    )


@dataclass(frozen=True)
class Member:
    """A subscriber with its live subscriptions to the matching lists: (list id, list name)."""

    id: int
    email: str
    domain: str
    lists: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Planned:
    """One subscription to unsubscribe, and why."""

    member: Member
    list_id: int
    list_name: str
    rule: Rule
    operator: DomainOperator


@dataclass
class Plan:
    removals: list[Planned] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # domain -> DNS status
    failed_members: Counter[str] = field(default_factory=Counter)  # domain -> subscribers


def plan(
    members: Iterable[Member],
    classified: Mapping[str, DomainOperator],
    excluded: Exclusions,
) -> Plan:
    """Pure: the subscriptions to remove. Only an MX that answered and belongs to an excluded
    operator removes anyone; a failed lookup is reported, never a move."""
    out = Plan()
    for member in members:
        op = classified.get(member.domain)
        if op is None or op.status != "ok":
            out.failures[member.domain] = op.status if op is not None else "not_cached"
            out.failed_members[member.domain] += 1
            continue
        rule = excluded.match_operator(op.operator, op.segment or None)
        if rule is None:
            continue
        for list_id, list_name in member.lists:
            out.removals.append(Planned(member, list_id, list_name, rule, op))
    return out


@dataclass
class InstancePrune:
    """What the prune did on one instance (the ``--json`` object per instance)."""

    instance: str
    lists: list[MailingList] = field(default_factory=list)
    scanned: int = 0  # subscribers with a live subscription to a matching list
    domains: int = 0
    matched: int = 0  # subscriptions an excluded operator now hosts
    removed: int = 0  # ... unsubscribed (0 in a dry run)
    by_operator: Counter[str] = field(default_factory=Counter)
    removals: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    failed_members: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "lists": [{"id": lst.id, "name": lst.name} for lst in self.lists],
            "scanned": self.scanned,
            "domains": self.domains,
            "matched": self.matched,
            "removed": self.removed,
            "by_operator": dict(sorted(self.by_operator.items())),
            "removals": self.removals,
            "lookup_failures": [
                {"domain": d, "status": s, "subscribers": self.failed_members[d]}
                for d, s in sorted(self.failures.items())
            ],
            "error": self.error,
        }


@dataclass
class Pruner:
    """The prune of any number of instances; ``excluded`` holds the excluded operators as
    operator rules (``operator:google``, ``operator:google/consumer``)."""

    patterns: Sequence[str]
    excluded: Exclusions
    domains: DomainClassifier
    clock: Callable[[], datetime]
    connect: Connect = ListmonkClient
    refresh: bool = False
    dry_run: bool = False
    batch_size: int = BATCH_SIZE
    progress: Note | None = None  # a terminal's progress line (the CLI's); None under cron

    def run(self, instances: Sequence[ListmonkInstance]) -> list[InstancePrune]:
        return each_instance(instances, self.connect, InstancePrune, self._prune, "prune")

    def _prune(self, client: ListmonkClient, result: InstancePrune) -> None:
        result.lists = matching_lists(client.lists(), self.patterns)
        if not result.lists:
            return
        members = self._members(client, result.lists)
        result.scanned = len(members)
        if self.progress is not None:
            domains = len({m.domain for m in members})
            self.progress(f"looking up the MX of {domains:,} domains for {client.instance.name}")
        classified = self.domains.classify({m.domain for m in members}, refresh=self.refresh)
        result.domains = len(classified)
        decided = plan(members, classified, self.excluded)
        result.failures, result.failed_members = decided.failures, decided.failed_members
        result.matched = len(decided.removals)
        result.by_operator.update(p.rule.text for p in decided.removals)
        old = previous_operators(self.domains.engine, {p.member.domain for p in decided.removals})
        removals = [self._removal(client.instance.name, p, old) for p in decided.removals]
        result.removals = [_as_json(r) for r in removals]
        if not self.dry_run:
            self._unsubscribe(client, removals, result)
        log.info(
            "event=listmonk_prune instance=%s lists=%d scanned=%d matched=%d removed=%d "
            "lookup_failures=%d dry_run=%s",
            client.instance.name,
            len(result.lists),
            result.scanned,
            result.matched,
            result.removed,
            len(result.failures),
            self.dry_run,
        )

    def _members(self, client: ListmonkClient, lists: list[MailingList]) -> list[Member]:
        names = {lst.id: lst.name for lst in lists}
        out = []
        what = f"subscribers of {client.instance.name} read"
        for sub in counted(client.iter_subscribers(list_ids=sorted(names)), self.progress, what):
            live = tuple(
                (s.list_id, names[s.list_id])
                for s in sub.lists
                if s.list_id in names and s.subscription_status != "unsubscribed"
            )
            if live:
                out.append(Member(sub.id, sub.email, domain_of(sub.email), live))
        return out

    @staticmethod
    def _removal(instance: str, p: Planned, old: Mapping[str, str | None]) -> Removal:
        return Removal(
            instance,
            p.member.id,
            p.member.email,
            p.member.domain,
            "unsubscribe",
            "mx_operator",
            rule=p.rule.text,
            list_id=p.list_id,
            list_name=p.list_name,
            old_operator=old.get(p.member.domain),
            new_operator=p.operator.label,
            mx_host=p.operator.mx_host,
        )

    def _unsubscribe(
        self, client: ListmonkClient, removals: list[Removal], result: InstancePrune
    ) -> None:
        by_list: dict[int, list[Removal]] = {}
        for r in removals:
            assert r.list_id is not None
            by_list.setdefault(r.list_id, []).append(r)
        size = self.batch_size
        for list_id, rows in sorted(by_list.items()):
            for start in range(0, len(rows), size):
                chunk = rows[start : start + size]
                client.unsubscribe_from_lists(
                    [r.subscriber_id for r in chunk], [list_id], batch_size=size
                )
                result.removed += len(chunk)
                record_removals(self.domains.engine, chunk, self.clock())


def _as_json(r: Removal) -> dict[str, Any]:
    return {
        "subscriber_id": r.subscriber_id,
        "email": r.email,
        "domain": r.domain,
        "list_id": r.list_id,
        "list": r.list_name,
        "old_operator": r.old_operator,
        "new_operator": r.new_operator,
        "mx_host": r.mx_host,
    }
