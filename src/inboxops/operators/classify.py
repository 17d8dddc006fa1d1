"""Which operator receives a domain's mail, from its MX host names. Pure: strings in, values out.

Three callers share one matcher: the reputation monitor (one relay host per delivery line, so
host lookups are memoised), list hygiene (a domain's whole MX set, to see it move to an excluded
operator) and DMARC enrichment. Matching is on host names, not recipient domains, because MX names
catch what a domain list misses (iCloud+ and Workspace custom domains, cox.net moving to Yahoo).

Rules: the host is lowercased and its trailing dot dropped; a pattern matches the host itself or
any name below it, on a label boundary; a ``*`` label matches exactly one label. The most specific
pattern wins (most labels, then most literal labels, then a user rule over a built-in one), so
the order of the table never matters.

User rules come from configuration as a plain mapping, validated once by :func:`parse_user_rules`::

    {"acme": ["mx.acme-mail.example"],                       # a new operator id
     "google/workspace": ["inbound.google-partner.example"],  # id/segment
     "bigcorp": {"patterns": ["mx.bigcorp.example"], "name": "BigCorp", "kind": "hosting"}}
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, cast

from inboxops.errors import ConfigError
from inboxops.operators.table import KINDS, OPERATORS, OTHER, RULES, Kind, Operator, Rule

Source = Literal["builtin", "user"]
Outcome = Literal["matched", "other", "null_mx", "no_mx"]

# An operator id or segment: stored in 32-character columns (mx_history, rep_daily, ...).
OPERATOR_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NO_RELAY: Final = frozenset({"", "none", "local", "virtual", "unknown"})
CACHE_SIZE: Final = 4096


@dataclass(frozen=True, slots=True)
class HostMatch:
    """The operator of one host; ``operator`` is ``"other"`` and ``pattern`` None when unmatched."""

    host: str
    operator: str
    segment: str | None = None
    pattern: str | None = None
    source: Source | None = None

    @property
    def matched(self) -> bool:
        return self.pattern is not None

    @property
    def label(self) -> str:
        """``operator/segment``, or the operator alone when it has no segment."""
        return f"{self.operator}/{self.segment}" if self.segment else self.operator

    @property
    def how(self) -> str:
        if self.pattern is None:
            return f"{self.host or '(empty)'} matches no pattern -> {self.label}"
        user = " (user rule)" if self.source == "user" else ""
        return f"{self.host} matches {self.pattern}{user} -> {self.label}"


@dataclass(frozen=True, slots=True)
class MxClassification:
    """The operator of a domain's MX set, the host that decided it, and why.

    ``operator`` is None for ``null_mx`` (the domain accepts no mail, RFC 7505) and ``no_mx``
    (an empty set). ``contested`` lists the other operators found at the lowest preference when
    those hosts disagreed; ``matches`` holds every record's match, by preference then host.
    """

    outcome: Outcome
    operator: str | None
    segment: str | None
    host: str | None
    pattern: str | None
    how: str
    contested: tuple[str, ...] = ()
    matches: tuple[HostMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class _Compiled:
    labels: tuple[str, ...]  # the pattern's labels, last label first
    rule: Rule
    source: Source

    @property
    def rank(self) -> tuple[int, int, int]:
        literal = sum(1 for label in self.labels if label != "*")
        return (len(self.labels), literal, 1 if self.source == "user" else 0)


def normalize_host(host: str) -> str:
    """Lowercase, no surrounding blanks, no trailing dot: the one form the matcher sees."""
    return host.strip().lower().rstrip(".")


def relay_host(relay: str) -> str | None:
    """The host name in a Postfix ``relay=`` value, or None when there is none to classify.

    ``relay=gmail-smtp-in.l.google.com[142.250.1.27]:25`` gives the name; ``none``, ``local``,
    transports such as ``private/dovecot-lmtp`` and IP literals give None: no name, no operator.
    """
    text = relay.strip().rstrip(",;")
    if text.startswith("relay="):
        text = text[len("relay=") :]
    name = normalize_host(text.partition("[")[0])
    if name in _NO_RELAY or "/" in name:
        return None
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return name
    return None


def _check_pattern(raw: object, owner: str) -> str:
    if not isinstance(raw, str):
        raise ConfigError(f"operator rule '{owner}': pattern {raw!r} is not a string")
    pattern = raw.strip().lower()
    hint = "write a host suffix such as 'mx.example.com' (it also matches names below it)"
    if not pattern.isascii():
        raise ConfigError(
            f"operator rule '{owner}': pattern '{raw}' is not ASCII; write the A-label (xn--...)"
        )
    pattern = pattern.removesuffix(".")
    labels = pattern.split(".")
    if len(labels) < 2:
        raise ConfigError(f"operator rule '{owner}': pattern '{raw}' is one label; {hint}")
    for label in labels:
        if label == "":
            raise ConfigError(
                f"operator rule '{owner}': pattern '{raw}' has an empty label; {hint}"
            )
        if label != "*" and not _LABEL.fullmatch(label):
            raise ConfigError(
                f"operator rule '{owner}': pattern '{raw}' has an invalid label '{label}'; "
                "use letters, digits, '-' and '_', or '*' for exactly one whole label"
            )
    literal = [label for label in labels if label != "*"]
    if len(literal) < 2 or labels[-1] == "*":
        raise ConfigError(
            f"operator rule '{owner}': pattern '{raw}' is too broad; end it with at least "
            "two literal labels, e.g. 'inbound.*.example.com'"
        )
    if labels[-1].isdigit():
        raise ConfigError(
            f"operator rule '{owner}': pattern '{raw}' ends in a number; patterns match host "
            "names, and IP addresses never name an operator"
        )
    return pattern


def _split_key(key: object) -> tuple[str, str | None]:
    if not isinstance(key, str):
        raise ConfigError(f"operator rules: key {key!r} is not a string; use 'id' or 'id/segment'")
    operator, slash, segment = key.strip().partition("/")
    for part, what in ((operator, "operator id"), (segment, "segment")):
        if (what == "operator id" or slash) and not OPERATOR_ID.fullmatch(part):
            raise ConfigError(
                f"operator rules: key '{key}' has a bad {what} '{part}'; use lowercase letters, "
                "digits, '-' and '_' (at most 32), as 'acme' or 'google/workspace'"
            )
    return operator, segment or None


def parse_user_rules(
    rules: Mapping[str, object] | None,
) -> tuple[tuple[Rule, ...], tuple[Operator, ...]]:
    """Validate user rules (see the module docstring); returns rules and any new operators.

    Raises :class:`ConfigError` naming the bad key or pattern. A pattern that a built-in rule
    also has is allowed: the user rule wins. The same pattern twice among user rules is not.
    """
    if rules is not None and not isinstance(rules, Mapping):
        raise ConfigError(
            "operator rules must be a table of 'id' or 'id/segment' = [host suffix patterns]"
        )
    known = {op.id for op in OPERATORS}
    out: list[Rule] = []
    new_ops: dict[str, Operator] = {}
    seen: dict[str, str] = {}
    for key, value in (rules or {}).items():
        operator, segment = _split_key(key)
        name: object = None
        kind: object = None
        patterns: object = value
        if isinstance(value, Mapping):
            extra = set(value) - {"patterns", "name", "kind"}
            if extra:
                raise ConfigError(
                    f"operator rule '{key}': unknown key(s) {sorted(extra)}; "
                    "allowed: patterns, name, kind"
                )
            patterns, name, kind = value.get("patterns"), value.get("name"), value.get("kind")
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list | tuple) or not patterns:
            raise ConfigError(
                f"operator rule '{key}': give a non-empty list of host suffix patterns"
            )
        if operator in known and (name is not None or kind is not None):
            raise ConfigError(
                f"operator rule '{key}': '{operator}' is built in; its name and kind are fixed "
                "(drop 'name'/'kind', or pick a new operator id)"
            )
        if kind is not None and kind not in KINDS:
            raise ConfigError(
                f"operator rule '{key}': kind {kind!r} is not one of {', '.join(KINDS)}"
            )
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError(f"operator rule '{key}': name must be a non-empty string")
        if operator not in known:
            display = str(name).strip() if name is not None else operator
            op = Operator(operator, display, cast(Kind, kind or "other"))
            previous = new_ops.get(operator)
            if previous is None or previous == Operator(operator, operator, "other"):
                new_ops[operator] = op
            elif isinstance(value, Mapping) and previous != op:
                raise ConfigError(
                    f"operator rule '{key}': '{operator}' already has name '{previous.name}' "
                    f"and kind '{previous.kind}'; give them once"
                )
        for raw in patterns:
            pattern = _check_pattern(raw, str(key))
            if pattern in seen:
                raise ConfigError(
                    f"operator rules: pattern '{pattern}' is given for both '{seen[pattern]}' "
                    f"and '{key}'; keep one"
                )
            seen[pattern] = str(key)
            out.append(Rule(pattern, operator, segment))
    return tuple(out), tuple(new_ops.values())


class Classifier:
    """The matcher over the built-in table plus validated user rules; host lookups memoised.

    Build one from configuration and pass it around; it holds no network state and is safe to
    share between threads.
    """

    def __init__(
        self, user_rules: Mapping[str, object] | None = None, *, cache_size: int = CACHE_SIZE
    ) -> None:
        extra_rules, extra_ops = parse_user_rules(user_rules)
        self.operators: dict[str, Operator] = {op.id: op for op in (*OPERATORS, *extra_ops)}
        self._literal: dict[str, _Compiled] = {}
        self._wildcard: list[_Compiled] = []
        compiled = [_Compiled(_labels(r.pattern), r, "builtin") for r in RULES]
        compiled += [_Compiled(_labels(r.pattern), r, "user") for r in extra_rules]
        for item in compiled:  # user rules come last and replace a built-in with the same text
            if "*" in item.labels:
                self._wildcard = [w for w in self._wildcard if w.rule.pattern != item.rule.pattern]
                self._wildcard.append(item)
            else:
                self._literal[item.rule.pattern] = item
        self._cache: dict[str, HostMatch] = {}
        self._cache_size = max(0, cache_size)
        self._lock = threading.Lock()

    def host(self, host: str) -> HostMatch:
        """The operator of one MX or relay host name."""
        cached = self._cache.get(host)
        if cached is not None:
            return cached
        match = self._match(normalize_host(host))
        if self._cache_size:
            with self._lock:
                if len(self._cache) >= self._cache_size:  # oldest first out: O(1), good enough
                    self._cache.pop(next(iter(self._cache)), None)
                self._cache[host] = match
        return match

    def relay(self, relay: str) -> HostMatch | None:
        """The operator of a Postfix ``relay=`` value; None for IP literals, ``none``, local."""
        name = relay_host(relay)
        return None if name is None else self.host(name)

    def mx_set(self, records: Iterable[tuple[int, str]]) -> MxClassification:
        """Classify a domain by its MX records, given as ``(preference, host)`` pairs.

        The lowest preference decides. When its hosts disagree, the choice is deterministic and
        stated in ``how``: a known operator over an unmatched host, then the operator with more
        hosts, then the operator id in alphabetical order.
        """
        pairs = sorted((int(pref), normalize_host(host)) for pref, host in records)
        real = [(pref, host) for pref, host in pairs if host]
        if not pairs:
            return MxClassification("no_mx", None, None, None, None, "no MX records")
        if not real:
            return MxClassification(
                "null_mx", None, None, None, None, "null MX (0 .): the domain accepts no mail"
            )
        matches = tuple(self.host(host) for _, host in real)
        lowest = real[0][0]
        top = [m for (pref, _), m in zip(real, matches, strict=True) if pref == lowest]
        groups: dict[str, list[HostMatch]] = {}
        for m in top:
            groups.setdefault(m.operator, []).append(m)
        order = sorted(groups, key=lambda op: (op == OTHER, -len(groups[op]), op))
        chosen = order[0]
        best = min(groups[chosen], key=lambda m: (-self._rank(m), m.host))
        where = f"preference {lowest}"
        if len(top) > 1:
            where += f", {len(groups[chosen])} of {len(top)} hosts"
        how = f"mx {best.how} ({where})"
        if len(order) > 1:
            how += (
                f"; lowest preference splits between {', '.join(sorted(order))}, chose "
                f"{chosen} ({_why(groups, order)})"
            )
        if len(real) < len(pairs):
            how += "; ignored a null MX record beside real ones (RFC 7505 forbids the mix)"
        return MxClassification(
            "other" if best.pattern is None else "matched",
            best.operator,
            best.segment,
            best.host,
            best.pattern,
            how,
            tuple(order[1:]),
            matches,
        )

    def _rank(self, match: HostMatch) -> int:
        if match.pattern is None:
            return -1
        return len(match.pattern.split("."))

    def _match(self, host: str) -> HostMatch:
        labels = host.split(".") if host else []
        best: _Compiled | None = None
        for i in range(len(labels)):  # longest literal suffix first; the first hit is the best
            best = self._literal.get(".".join(labels[i:]))
            if best is not None:
                break
        reverse = labels[::-1]
        for item in self._wildcard:
            if _fits(item.labels, reverse) and (best is None or item.rank > best.rank):
                best = item
        if best is None:
            return HostMatch(host, OTHER)
        return HostMatch(
            host, best.rule.operator, best.rule.segment, best.rule.pattern, best.source
        )


def _labels(pattern: str) -> tuple[str, ...]:
    return tuple(reversed(pattern.split(".")))


def _fits(pattern: tuple[str, ...], reverse: list[str]) -> bool:
    """Whether reversed host labels start with the reversed pattern, ``*`` matching one label."""
    if len(reverse) < len(pattern):
        return False
    return all(p in ("*", h) for p, h in zip(pattern, reverse, strict=False))


def _why(groups: Mapping[str, list[HostMatch]], order: list[str]) -> str:
    first, second = order[0], order[1]
    if second == OTHER and first != OTHER:
        return "a known operator over unmatched hosts"
    if len(groups[first]) > len(groups[second]):
        return "more hosts"
    return "equal hosts, first by id"
