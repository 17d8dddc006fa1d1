"""Settings of the reputation monitor and the layers it shares: DNS, operators, health.

Same rules as every section (see :mod:`inboxops.config`): each field is a TOML key, checked
for its type, with an ``INBOXOPS_*`` override where ``env=`` says so.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from inboxops.config.schema import setting


def _nameserver(text: str) -> str:
    from inboxops.dns.resolve import parse_nameserver

    try:
        return str(parse_nameserver(text))
    except Exception as exc:  # parse_nameserver raises ConfigError / ValueError
        raise ValueError(f"a nameserver like 127.0.0.1:5353 or [::1]:53 ({exc})") from None


def _zone(text: str) -> str:
    if text in ("UTC", "local"):
        return text
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("a time zone name such as UTC or Europe/Berlin, or local") from None
    return text


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError("an IP address (the instance's smtp_bind_address)") from None


def _glob(text: str) -> str:
    if not text.strip():
        raise ValueError("a glob on syslog names, e.g. postfix-out0*")
    fnmatch.translate(text)
    return text


@dataclass(frozen=True)
class DnsSettings:
    """[dns]: where every lookup goes, and how long answers are trusted."""

    nameservers: tuple[str, ...] = setting(
        (), env="DNS_NAMESERVERS", parse=_nameserver, expect='a list like ["127.0.0.1:5353"]'
    )
    timeout: float = setting(2.0, minimum=0.1, maximum=60)  # per query
    lifetime: float = setting(5.0, minimum=0.1, maximum=120)  # per lookup, retries included
    min_ttl: int = setting(300, minimum=0)  # cache answers at least this long (seconds)
    max_ttl: int = setting(86_400, minimum=60)  # ... and at most this long
    failure_ttl: int = setting(600, minimum=0)  # SERVFAIL/timeout: retry after this long


@dataclass(frozen=True)
class OperatorSettings:
    """[operators]: extra MX-host rules, taking precedence over the built-in table.

    ``rules`` maps ``operator`` or ``operator/segment`` to host suffixes:
    ``"acme" = ["mx.acme.example"]``, ``"google/workspace" = ["mx.custom-google.example"]``.
    """

    rules: dict[str, tuple[str, ...]] = setting(factory=dict)


@dataclass(frozen=True)
class ReputationAlertSettings:
    """[reputation.alerts]: regressions of an IP x operator against its trailing baseline."""

    baseline_days: int = setting(7, minimum=1, maximum=90)
    min_attempts: int = setting(50, minimum=1)  # quieter IP x operator pairs are not judged
    delivery_drop_points: float = setting(10.0, minimum=0.1, maximum=100)
    throttled_min: int = setting(50, minimum=1)  # today's throttles >= this...
    throttled_factor: float = setting(3.0, minimum=1)  # ... and >= factor x baseline day mean
    policy_blocked_min: int = setting(20, minimum=1)
    policy_blocked_factor: float = setting(3.0, minimum=1)
    repeat_hours: int = setting(24, minimum=0)


@dataclass(frozen=True)
class ColourSettings:
    """[reputation.colours]: the SNDS-style verdict of one IP x operator x day.

    red when delivery < ``red_below`` or policy blocks >= ``red_block_share`` of attempts;
    yellow when delivery < ``green_from`` or (throttles + blocks) >= ``yellow_trouble_share``;
    green otherwise. A day with nothing final yet (only pending) is judged on its attempts.
    """

    green_from: float = setting(0.95, minimum=0, maximum=1)
    red_below: float = setting(0.80, minimum=0, maximum=1)
    yellow_trouble_share: float = setting(0.05, minimum=0, maximum=1)
    red_block_share: float = setting(0.10, minimum=0, maximum=1)


@dataclass(frozen=True)
class ReputationSettings:
    """[reputation]: what the Postfix log monitor counts, and as whom."""

    internal_domains: tuple[str, ...] = setting((), lower=True)  # and their subdomains
    probe_prefixes: tuple[str, ...] = setting((), lower=True)  # local-part prefixes (seed-)
    senders: dict[str, str] = setting(factory=dict, parse=_ip)  # syslog name -> sending IP
    pools: dict[str, tuple[str, ...]] = setting(factory=dict, parse=_glob)  # pool -> globs
    log_timezone: str = setting("UTC", parse=_zone)  # zone of timestamps without an offset
    # `reputation prune` default age in days (attempts go, the daily trend stays); 0 = forever
    retention_days: int = setting(0, minimum=0)
    alerts: ReputationAlertSettings = setting(factory=ReputationAlertSettings)
    colours: ColourSettings = setting(factory=ColourSettings)

    def sender(self, syslog_name: str) -> str:
        """The sending identity of a syslog name: its mapped IP, or the name itself."""
        return self.senders.get(syslog_name, syslog_name)

    def pool_of(self, syslog_name: str) -> list[str]:
        return [
            pool
            for pool, globs in self.pools.items()
            if any(fnmatch.fnmatchcase(syslog_name, g) for g in globs)
        ]


@dataclass(frozen=True)
class HealthSettings:
    """[health]: the end-of-day check, silent on healthy days."""

    min_delivery_rate: float = setting(0.65, minimum=0, maximum=1)
    max_policy_blocks: int = setting(150, minimum=0)  # per pool and day
