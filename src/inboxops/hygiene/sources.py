"""What list hygiene commands start from: the exclusion list as configured, checked operators.

The one place the exclusion files are read. Everything that could make a rule silently match
nothing stops the command with a :class:`ConfigError` (exit 2) naming the file and line: a
missing or unreadable file, a malformed rule, an operator the classifier never gives.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path

from inboxops.config.hygiene import ExclusionSettings
from inboxops.errors import ConfigError
from inboxops.hygiene.exclusions import (
    Exclusions,
    Rule,
    parse_lines,
    parse_rule,
    unknown_operators,
)
from inboxops.operators.classify import parse_user_rules
from inboxops.operators.table import OPERATORS, OTHER, RULES


def known_operators(user_rules: Mapping[str, object] | None = None) -> dict[str, set[str]]:
    """Every operator id the classifier can give, with its segments (built in + [operators])."""
    rules, new_ops = parse_user_rules(dict(user_rules or {}) or None)
    known: dict[str, set[str]] = {op.id: set() for op in (*OPERATORS, *new_ops)}
    known.pop(OTHER, None)  # "other" is no operator: it is what matches no rule
    for rule in (*RULES, *rules):
        known.setdefault(rule.operator, set())
        if rule.segment:
            known[rule.operator].add(rule.segment)
    return known


def load_exclusions(
    settings: ExclusionSettings, user_rules: Mapping[str, object] | None = None
) -> Exclusions:
    """``[exclusions] rules`` then every rule of every file in ``files``, in that order."""
    rules: list[Rule] = [parse_rule(text, "[exclusions] rules") for text in settings.rules]
    for name in settings.files:
        path = Path(name).expanduser()
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ConfigError(
                f"exclusion file {path} (in [exclusions] files) does not exist; create it or "
                "remove it from the list"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read exclusion file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"exclusion file {path} is not UTF-8 text") from None
        try:
            rules.extend(parse_lines(text, str(path)))
        except ValueError as exc:
            raise ConfigError(f"exclusion file {exc}; fix or remove that line") from None
    exclusions = Exclusions(rules)
    check_operator_rules(exclusions, known_operators(user_rules))
    return exclusions


def check_operator_rules(exclusions: Exclusions, known: dict[str, set[str]]) -> None:
    bad = unknown_operators(exclusions, known)
    if bad:
        rule, why = bad[0]
        raise ConfigError(
            f"exclusion rule {rule.text} ({rule.origin}): {why}{_suggest(rule.value, known)}; "
            "operators are listed in docs/mx.md, and [operators] rules can add one"
        )


def excluded_operators(names: Iterable[str], known: dict[str, set[str]]) -> list[Rule]:
    """``--exclude-operator`` values (``google``, ``google/consumer``) as operator rules,
    checked like exclusion rules; ``ValueError`` says what is wrong with the first bad one."""
    out: list[Rule] = []
    for name in names:
        rule = parse_rule(f"operator:{name.strip()}", "--exclude-operator")
        bad = unknown_operators(Exclusions([rule]), known)
        if bad:
            raise ValueError(f"{bad[0][1]}{_suggest(rule.value, known)}")
        out.append(rule)
    return out


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
