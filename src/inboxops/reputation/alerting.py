"""Reputation alerts and the end-of-day health check: figures from the store, rules, channels.

Both go through :func:`inboxops.alerts.deliver.deliver`, so they repeat and resolve exactly like
DMARC alerts (``[reputation.alerts] repeat_hours``; one "resolved" line when a problem clears)
and stay silent when all is well. Every health run is recorded (``inboxops health history``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine

from inboxops.alerts.deliver import Delivery, deliver
from inboxops.alerts.policy import Finding
from inboxops.config import Settings
from inboxops.reputation import report, rules
from inboxops.reputation.metrics import DayRow, Figures
from inboxops.storage.db import database_errors, write_transaction
from inboxops.storage.models import rep_health_runs


def _by_pair(rows: Sequence[DayRow]) -> dict[tuple[str, str], Figures]:
    out: dict[tuple[str, str], Figures] = {}
    for row in rows:
        out.setdefault((row.sending_ip, row.operator), Figures()).add(row.figures)
    return out


def check_regressions(
    engine: Engine,
    settings: Settings,
    day: date,
    *,
    now: datetime,
    dry_run: bool,
    ips: Sequence[str] = (),
    operators: Sequence[str] = (),
) -> Delivery[rules.Regression]:
    """Judge ``day`` against the baseline days before it; send what is due."""
    rep = settings.reputation
    n = rep.alerts.baseline_days
    baseline_days = [day - timedelta(days=i) for i in range(n, 0, -1)]
    today = _by_pair(report.day_rows(engine, rep, [day], ips=ips, operators=operators))
    before = _by_pair(report.day_rows(engine, rep, baseline_days, ips=ips, operators=operators))
    found = rules.regressions(day, today, before, n, rep.alerts)
    reasons = {
        rules.THROTTLING: ("throttled",),
        rules.POLICY_BLOCKS: ("policy_block",),
        rules.DELIVERY_DROP: ("policy_block", "throttled", "user_unknown", "auth_failure"),
    }
    with_samples = []
    for r in found:
        names = report.syslog_names_of(engine, rep, day, r.sending_ip)
        sample = report.sample_reply(engine, day, names, r.operator, reasons[r.kind])
        with_samples.append(
            rules.Regression(
                r.kind, r.day, r.sending_ip, r.operator, r.today, r.baseline, n, sample
            )
        )
    return deliver(
        engine,
        settings,
        [Finding(r.kind, r.key, r.magnitude, r) for r in with_samples],
        kinds=rules.KINDS,
        repeat=timedelta(hours=rep.alerts.repeat_hours),
        now=now,
        render=rules.render_regressions,
        dry_run=dry_run,
    )


@dataclass(frozen=True)
class PoolHealth:
    pool: str
    day: date
    figures: Figures
    syslog_names: tuple[str, ...]
    alerts: tuple[rules.HealthAlert, ...]

    def as_json(self) -> dict[str, object]:
        f = self.figures
        rate = f.delivery_rate
        return {
            "pool": self.pool,
            "date": self.day.isoformat(),
            "delivered": f.delivered,
            "bounced": f.bounced,
            "expired": f.expired,
            "pending": f.pending,
            "delivery_rate": round(rate, 4) if rate is not None else None,
            "policy_blocked": f.policy_blocked,
            "policy_blocked_550_571": f.policy_blocked_550_571,
            "attempts": f.attempts,
            "syslog_names": list(self.syslog_names),
            "healthy": not self.alerts,
            "alerts": [a.message for a in self.alerts],
        }


def check_health(
    engine: Engine,
    settings: Settings,
    day: date,
    pools: Sequence[str],
    *,
    now: datetime,
    dry_run: bool,
    repeat_hours: int,
) -> tuple[list[PoolHealth], Delivery[rules.HealthAlert]]:
    """The end-of-day verdict of each pool; recorded, and alerted only when unhealthy."""
    results: list[PoolHealth] = []
    for pool in pools:
        figures, names = report.pool_figures(engine, settings.reputation, day, pool)
        alerts = rules.health(pool, day, figures, settings.health)
        results.append(PoolHealth(pool, day, figures, tuple(names), tuple(alerts)))
    if not dry_run:
        record_health(engine, results, now)
    findings = [Finding(a.kind, a.pool, a.magnitude, a) for p in results for a in p.alerts]
    delivery = deliver(
        engine,
        settings,
        findings,
        kinds=rules.HEALTH_KINDS,
        repeat=timedelta(hours=repeat_hours),
        now=now,
        render=rules.render_health,
        dry_run=dry_run,
    )
    return results, delivery


def record_health(engine: Engine, results: Sequence[PoolHealth], now: datetime) -> None:
    rows = []
    for p in results:
        j = p.as_json()
        rows.append(
            {
                "run_at": now,
                "day": p.day,
                "pool": p.pool,
                "delivered": j["delivered"],
                "bounced": j["bounced"],
                "expired": j["expired"],
                "pending": j["pending"],
                "delivery_rate": j["delivery_rate"],
                "policy_blocked": j["policy_blocked"],
                "policy_blocked_550_571": j["policy_blocked_550_571"],
                "healthy": not p.alerts,
                "alerts": j["alerts"],
            }
        )
    if not rows:
        return
    with database_errors(engine, "write"), write_transaction(engine) as conn:
        conn.execute(rep_health_runs.insert(), rows)


def utc_today(clock: Callable[[], datetime]) -> date:
    return clock().astimezone(UTC).date()
