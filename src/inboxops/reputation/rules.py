"""Reputation alert rules and the end-of-day health verdict. Pure: figures in, alerts out.

Regressions (``inboxops reputation alert``), per sending IP x operator, judging one day against
the ``baseline_days`` before it (``[reputation.alerts]``); only pairs with at least
``min_attempts`` attempts that day are judged:

* ``rep_delivery_drop``: the delivery rate fell by ``delivery_drop_points`` or more against the
  baseline's (the baseline needs ``min_attempts`` final outcomes to count);
* ``rep_throttling``: throttled attempts reached ``throttled_min`` and ``throttled_factor``
  times the baseline's daily mean;
* ``rep_policy_blocks``: policy blocks reached ``policy_blocked_min`` and
  ``policy_blocked_factor`` times the baseline's daily mean.

Health (``inboxops health``), per pool and day (``[health]``): delivery below
``min_delivery_rate`` or more than ``max_policy_blocks`` policy blocks. Healthy days say
nothing.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from inboxops.config.reputation import HealthSettings, ReputationAlertSettings
from inboxops.reputation.metrics import Figures

DELIVERY_DROP = "rep_delivery_drop"
THROTTLING = "rep_throttling"
POLICY_BLOCKS = "rep_policy_blocks"
KINDS = (DELIVERY_DROP, THROTTLING, POLICY_BLOCKS)
HEALTH_DELIVERY = "health_delivery"
HEALTH_BLOCKS = "health_policy_blocks"
HEALTH_KINDS = (HEALTH_DELIVERY, HEALTH_BLOCKS)


@dataclass(frozen=True)
class Regression:
    kind: str
    day: date
    sending_ip: str
    operator: str
    today: Figures
    baseline: Figures  # summed over the baseline days
    baseline_days: int
    sample_reply: str | None = None

    @property
    def key(self) -> str:
        return f"{self.sending_ip} {self.operator}"

    @property
    def magnitude(self) -> int:
        """What "doubled" is measured on for repeats."""
        if self.kind == DELIVERY_DROP:
            return round(self.drop_points * 10)
        return self.today.throttled if self.kind == THROTTLING else self.today.policy_blocked

    @property
    def drop_points(self) -> float:
        now, before = self.today.delivery_rate, self.baseline.delivery_rate
        if now is None or before is None:
            return 0.0
        return round((before - now) * 100, 6)

    def headline(self) -> str:
        t, b, days = self.today, self.baseline, max(self.baseline_days, 1)
        who = f"{self.sending_ip} -> {self.operator}"
        if self.kind == DELIVERY_DROP:
            return (
                f"{who}: delivery {_pct(t.delivery_rate)} on {self.day}, down "
                f"{self.drop_points:.1f} points from {_pct(b.delivery_rate)} over the "
                f"{days} days before ({t.attempts} attempts)"
            )
        if self.kind == THROTTLING:
            return (
                f"{who}: {t.throttled} throttled attempts on {self.day} against "
                f"{b.throttled / days:.1f} a day before ({t.attempts} attempts)"
            )
        return (
            f"{who}: {t.policy_blocked} policy blocks on {self.day} against "
            f"{b.policy_blocked / days:.1f} a day before ({t.attempts} attempts)"
        )

    def advice(self) -> str:
        if self.kind == THROTTLING:
            return (
                "The operator is rate-limiting this IP: slow it down for this operator (lower "
                "the concurrency and rate of its transport), and look at what changed in volume "
                "or complaints."
            )
        if self.kind == POLICY_BLOCKS:
            return (
                "The operator is refusing this IP on policy or reputation: stop bulk sends from "
                "it to this operator, check blocklists (DNSBL), PTR, SPF/DKIM/DMARC, and the "
                "operator's postmaster or delisting page named in the reply."
            )
        return (
            "Fewer messages are getting through: see which replies changed (throttles, blocks, "
            "unknown users) and pause or slow this IP for this operator until it recovers."
        )

    def as_json(self) -> dict[str, Any]:
        def figures(f: Figures) -> dict[str, Any]:
            rate = f.delivery_rate
            return {
                "attempts": f.attempts,
                "delivered": f.delivered,
                "bounced": f.bounced,
                "expired": f.expired,
                "delivery_rate": round(rate, 4) if rate is not None else None,
                "throttled": f.throttled,
                "policy_blocked": f.policy_blocked,
            }

        return {
            "kind": self.kind,
            "date": self.day.isoformat(),
            "sending_ip": self.sending_ip,
            "operator": self.operator,
            "today": figures(self.today),
            "baseline": figures(self.baseline) | {"days": self.baseline_days},
            "sample_reply": self.sample_reply,
            "headline": self.headline(),
            "advice": self.advice(),
        }


def _pct(rate: float | None) -> str:
    return f"{rate:.1%}" if rate is not None else "n/a"


def regressions(
    day: date,
    today: dict[tuple[str, str], Figures],
    baseline: dict[tuple[str, str], Figures],
    baseline_days: int,
    t: ReputationAlertSettings,
) -> list[Regression]:
    """Alerts for ``day``: ``today`` and ``baseline`` map (sending IP, operator) to figures."""
    out: list[Regression] = []
    for (ip, operator), now in sorted(today.items()):
        if now.attempts < t.min_attempts:
            continue
        before = baseline.get((ip, operator), Figures())
        days = max(baseline_days, 1)
        kinds = []
        rate, base_rate = now.delivery_rate, before.delivery_rate
        if (
            rate is not None
            and base_rate is not None
            and before.final >= t.min_attempts
            and round((base_rate - rate) * 100, 6) >= t.delivery_drop_points  # 85% vs 95%: 10
        ):
            kinds.append(DELIVERY_DROP)
        if now.throttled >= t.throttled_min and now.throttled >= (
            t.throttled_factor * before.throttled / days
        ):
            kinds.append(THROTTLING)
        if now.policy_blocked >= t.policy_blocked_min and now.policy_blocked >= (
            t.policy_blocked_factor * before.policy_blocked / days
        ):
            kinds.append(POLICY_BLOCKS)
        out.extend(Regression(k, day, ip, operator, now, before, baseline_days) for k in kinds)
    order = {POLICY_BLOCKS: 0, DELIVERY_DROP: 1, THROTTLING: 2}
    out.sort(key=lambda r: (order[r.kind], -r.today.attempts, r.sending_ip, r.operator))
    return out


@dataclass(frozen=True)
class HealthAlert:
    kind: str
    pool: str
    day: date
    message: str
    magnitude: int


def health(pool: str, day: date, f: Figures, t: HealthSettings) -> list[HealthAlert]:
    """The pool's verdict for ``day``: alerts only when delivery or policy blocks are out."""
    out: list[HealthAlert] = []
    rate = f.delivery_rate
    if rate is not None and rate < t.min_delivery_rate:
        out.append(
            HealthAlert(
                HEALTH_DELIVERY,
                pool,
                day,
                f"pool {pool}: delivery {rate:.1%} on {day} is below "
                f"{t.min_delivery_rate:.0%} ({f.delivered} delivered of {f.final} final; "
                f"{f.bounced} bounced, {f.expired} expired, {f.pending} pending)",
                round((t.min_delivery_rate - rate) * 1000),
            )
        )
    if f.policy_blocked > t.max_policy_blocks:
        out.append(
            HealthAlert(
                HEALTH_BLOCKS,
                pool,
                day,
                f"pool {pool}: {f.policy_blocked} policy blocks on {day}, over "
                f"{t.max_policy_blocks} ({f.policy_blocked_550_571} of them 550 5.7.1)",
                f.policy_blocked,
            )
        )
    return out


def render_regressions(
    due: Sequence[Regression], cleared: Sequence[tuple[str, str]]
) -> tuple[str, str, str]:
    """(title, Telegram HTML, plain text); reply texts come from strangers: escaped."""
    title = f"inboxops: {len(due)} reputation alert{'s' if len(due) != 1 else ''}"
    if cleared:
        title += f", {len(cleared)} resolved"
    parts = [f"<b>{html.escape(title)}</b>"]
    text = []
    for r in due:
        sample = f"\nReply: {r.sample_reply}" if r.sample_reply else ""
        parts.append(
            f"<b>{html.escape(r.headline())}</b>\n{html.escape(r.advice())}{html.escape(sample)}"
        )
        text.append(f"- {r.headline()}\n  {r.advice()}{sample}")
    for kind, key in cleared:
        line = f"Resolved: {kind.removeprefix('rep_').replace('_', ' ')} for {key}"
        parts.append(html.escape(line))
        text.append(f"- {line}")
    return title, "\n\n".join(parts), "\n".join(text)


def render_health(
    due: Sequence[HealthAlert], cleared: Sequence[tuple[str, str]]
) -> tuple[str, str, str]:
    title = f"inboxops health: {len(due)} problem{'s' if len(due) != 1 else ''}"
    if cleared:
        title += f", {len(cleared)} resolved"
    lines = [a.message for a in due] + [f"Resolved: {k} for pool {key}" for k, key in cleared]
    body = "\n".join(html.escape(line) for line in lines)
    return title, f"<b>{html.escape(title)}</b>\n{body}", "\n".join(f"- {ln}" for ln in lines)
