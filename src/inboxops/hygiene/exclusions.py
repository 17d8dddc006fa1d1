"""The exclusion list: which rule, if any, a domain (or an address) falls under. Pure.

A rule is one of

* ``icloud.com``: that domain exactly (not its subdomains);
* ``*.example.com``: every subdomain of example.com (``a.example.com``, ``a.b.example.com``),
  on a label boundary: neither ``example.com`` itself (give it as its own rule) nor
  ``badexample.com``. This is what listmonk's ``privacy.domain_blocklist`` means by it too;
* ``operator:apple`` (or ``operator:google/consumer``): every domain whose MX belongs to that
  operator (and segment), as :mod:`inboxops.operators` classifies it. This catches iCloud+ and
  Workspace custom domains that no domain list can name.

Domains are compared lower-case, without a trailing dot, internationalised names in their
ASCII (``xn--``) form, so ``Bücher.DE.`` and ``xn--bcher-kva.de`` are one domain. When several
rules match, the most specific one is reported: an exact domain, then the closest wildcard,
then an operator rule with a segment, then one without.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from inboxops.operators.classify import OPERATOR_ID

RuleKind = Literal["domain", "suffix", "operator"]
OPERATOR_PREFIX = "operator:"

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def canonical_domain(text: str) -> str:
    """Lower-case, no surrounding space or trailing dot, IDNA (``xn--``) form when possible."""
    domain = text.strip().lower().rstrip(".")
    if not domain.isascii():
        with contextlib.suppress(UnicodeError):  # kept as given: it then only matches itself
            domain = domain.encode("idna").decode("ascii")
    return domain


def domain_of(address: str) -> str:
    """The canonical domain of ``user@domain`` (or of a bare domain)."""
    return canonical_domain(address.rpartition("@")[2])


@dataclass(frozen=True)
class Rule:
    """One exclusion rule; ``origin`` says where it was written (``config`` or ``file:line``)."""

    kind: RuleKind
    value: str  # the domain, the parent domain of a wildcard, or the operator id
    segment: str | None = None  # operator rules only
    origin: str = "config"

    @property
    def text(self) -> str:
        """The rule as written in canonical form: the key ``by_rule`` counts are reported by."""
        if self.kind == "suffix":
            return f"*.{self.value}"
        if self.kind == "operator":
            tail = f"/{self.segment}" if self.segment else ""
            return f"{OPERATOR_PREFIX}{self.value}{tail}"
        return self.value


def _check_domain(domain: str, *, wildcard: bool) -> str:
    name = canonical_domain(domain)
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{domain!r} is not a domain name")
    if len(labels) < 2 and not wildcard:
        raise ValueError(f"{domain!r} has no dot; write a whole domain such as icloud.com")
    return name


def parse_rule(text: str, origin: str = "config") -> Rule:
    """One rule from its text; ``ValueError`` says what is wrong with it."""
    raw = text.strip()
    lowered = raw.lower()
    if not raw:
        raise ValueError("an empty rule")
    if lowered.startswith(OPERATOR_PREFIX):
        operator, slash, segment = lowered[len(OPERATOR_PREFIX) :].strip().partition("/")
        if not OPERATOR_ID.fullmatch(operator) or (slash and not OPERATOR_ID.fullmatch(segment)):
            raise ValueError(
                f"{raw!r}: write operator:ID or operator:ID/SEGMENT, e.g. operator:apple"
            )
        return Rule("operator", operator, segment or None, origin)
    if "@" in raw:
        raise ValueError(f"{raw!r} is an address; exclusion rules name domains")
    if lowered.startswith("*."):
        return Rule("suffix", _check_domain(raw[2:], wildcard=True), None, origin)
    if "*" in raw:
        raise ValueError(f"{raw!r}: a wildcard is only allowed as *.domain, e.g. *.example.com")
    return Rule("domain", _check_domain(raw, wildcard=False), None, origin)


def parse_lines(text: str, origin: str) -> list[Rule]:
    """The rules of a file: one per line, ``#`` starts a comment, blank lines skipped.

    ``ValueError`` names ``origin:line`` of the first bad rule.
    """
    rules: list[Rule] = []
    for number, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        where = f"{origin}:{number}"
        try:
            rules.append(parse_rule(body, where))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return rules


class Exclusions:
    """The whole exclusion list; the first copy of a rule given twice is the one kept."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        unique: dict[str, Rule] = {}
        for rule in rules:
            unique.setdefault(rule.text, rule)
        self.rules: tuple[Rule, ...] = tuple(unique.values())
        self._domains = {r.value: r for r in self.rules if r.kind == "domain"}
        self._suffixes = {r.value: r for r in self.rules if r.kind == "suffix"}
        self._operators = {(r.value, r.segment): r for r in self.rules if r.kind == "operator"}

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def needs_operators(self) -> bool:
        """Some rule can only be decided from a domain's MX (a DNS lookup, cached)."""
        return bool(self._operators)

    @property
    def operator_rules(self) -> tuple[Rule, ...]:
        return tuple(self._operators.values())

    def match_domain(self, domain: str) -> Rule | None:
        """The domain or wildcard rule ``domain`` falls under (no MX needed)."""
        name = canonical_domain(domain)
        exact = self._domains.get(name)
        if exact is not None:
            return exact
        parent = name
        while "." in parent:
            parent = parent.split(".", 1)[1]
            rule = self._suffixes.get(parent)
            if rule is not None:
                return rule
        return None

    def match_operator(self, operator: str | None, segment: str | None = None) -> Rule | None:
        """The operator rule a domain classified as ``operator``/``segment`` falls under."""
        if not operator:
            return None
        if segment:
            specific = self._operators.get((operator, segment))
            if specific is not None:
                return specific
        return self._operators.get((operator, None))

    def match(
        self, domain: str, operator: str | None = None, segment: str | None = None
    ) -> Rule | None:
        """The most specific rule ``domain`` falls under; operator rules need its operator."""
        return self.match_domain(domain) or self.match_operator(operator, segment)

    def blocklist_entries(self) -> list[str]:
        """The rules listmonk's ``privacy.domain_blocklist`` can hold itself (domains and
        ``*.`` wildcards; operator rules need a DNS lookup listmonk does not make)."""
        return [r.text for r in self.rules if r.kind != "operator"]


def unknown_operators(exclusions: Exclusions, known: dict[str, set[str]]) -> list[tuple[Rule, str]]:
    """Operator rules naming an operator (or segment) the classifier never gives, each with a
    reason: such a rule would silently match nothing. ``known`` maps id -> its segments."""
    out: list[tuple[Rule, str]] = []
    for rule in exclusions.operator_rules:
        if rule.value not in known:
            out.append((rule, f"no operator {rule.value!r}"))
        elif rule.segment and rule.segment not in known[rule.value]:
            segments = ", ".join(sorted(known[rule.value])) or "none"
            out.append((rule, f"{rule.value} has no segment {rule.segment!r} (it has: {segments})"))
    return out
