"""The reputation rules at their boundaries, one unit either side: the SNDS-style colours,
regressions against the trailing baseline (and its minimums and noise factor), and the
end-of-day health check. Pure: figures in, findings out."""

from __future__ import annotations

from datetime import date

import pytest

from inboxops.config.reputation import ColourSettings, HealthSettings, ReputationAlertSettings
from inboxops.reputation import rules
from inboxops.reputation.metrics import GREEN, RED, YELLOW, Figures, colour


def figures(**counts: int) -> Figures:
    return Figures(**counts)


@pytest.mark.parametrize(
    ("f", "want"),
    [
        (figures(attempts=100, delivered=95), GREEN),  # exactly 95% is green
        (figures(attempts=100, delivered=94, bounced=1, expired=0, pending=5), GREEN),
        (figures(attempts=100, delivered=94, bounced=6), YELLOW),
        (figures(attempts=100, delivered=80, bounced=20), YELLOW),  # exactly 80% is yellow
        (figures(attempts=100, delivered=79, bounced=21), RED),
        (figures(attempts=100, delivered=100, throttled=5), YELLOW),  # 5% trouble
        (figures(attempts=100, delivered=100, throttled=4), GREEN),
        (figures(attempts=100, delivered=100, policy_blocked=10), RED),  # 10% blocks
        (figures(attempts=100, delivered=100, policy_blocked=9), YELLOW),
        (figures(), None),
    ],
)
def test_colour_boundaries(f: Figures, want: str | None) -> None:
    assert colour(f, ColourSettings()) == want


T = ReputationAlertSettings()
DAY = date(2026, 11, 24)
BASE = figures(attempts=700, delivered=665, bounced=35, throttled=70, policy_blocked=140)  # 95%


@pytest.mark.parametrize(
    ("today", "kinds"),
    [
        (figures(attempts=100, delivered=85, bounced=15), [rules.DELIVERY_DROP]),  # 10.0 points
        (figures(attempts=100, delivered=86, bounced=14), []),  # 9 points
        (figures(attempts=49, delivered=10, bounced=39), []),  # under min_attempts: not judged
        (figures(attempts=50, delivered=40, bounced=10), [rules.DELIVERY_DROP]),  # exactly 50
        (figures(attempts=100, delivered=100, throttled=50), [rules.THROTTLING]),  # 50 >= 3 x 10
        (figures(attempts=100, delivered=100, throttled=49), []),
        (figures(attempts=100, delivered=100, policy_blocked=60), [rules.POLICY_BLOCKS]),  # 3 x 20
        (figures(attempts=100, delivered=100, policy_blocked=59), []),
    ],
)
def test_regression_boundaries(today: Figures, kinds: list[str]) -> None:
    found = rules.regressions(
        DAY, {("198.51.100.5", "google"): today}, {("198.51.100.5", "google"): BASE}, 7, T
    )
    assert [r.kind for r in found] == kinds


def test_regression_minimums_apply_without_a_baseline() -> None:
    new_ip = figures(attempts=200, delivered=200, throttled=50, policy_blocked=19)
    found = rules.regressions(DAY, {("192.0.2.9", "yahoo"): new_ip}, {}, 7, T)
    assert [r.kind for r in found] == [rules.THROTTLING]
    new_ip = figures(attempts=200, delivered=200, throttled=49, policy_blocked=20)
    found = rules.regressions(DAY, {("192.0.2.9", "yahoo"): new_ip}, {}, 7, T)
    assert [r.kind for r in found] == [rules.POLICY_BLOCKS]


@pytest.mark.parametrize(
    ("today", "kinds"),
    [
        (figures(attempts=300, delivered=300, throttled=120), [rules.THROTTLING]),  # 3 x 40/day
        (figures(attempts=300, delivered=300, throttled=119), []),
        (figures(attempts=300, delivered=300, policy_blocked=90), [rules.POLICY_BLOCKS]),  # 3 x 30
        (figures(attempts=300, delivered=300, policy_blocked=89), []),
    ],
)
def test_a_noisy_baseline_raises_the_bar_by_its_factor(today: Figures, kinds: list[str]) -> None:
    """Past the minimums, today must reach factor x the baseline's daily mean."""
    noisy = figures(attempts=2800, delivered=2800, throttled=280, policy_blocked=210)
    pair = ("198.51.100.5", "google")
    assert [r.kind for r in rules.regressions(DAY, {pair: today}, {pair: noisy}, 7, T)] == kinds


@pytest.mark.parametrize(("baseline_final", "kinds"), [(50, [rules.DELIVERY_DROP]), (49, [])])
def test_a_delivery_drop_needs_a_baseline_of_min_attempts(
    baseline_final: int, kinds: list[str]
) -> None:
    """A baseline of a few final outcomes says nothing: 96% of 50 is judged, of 49 not."""
    delivered = round(baseline_final * 0.96)
    base = figures(attempts=baseline_final, delivered=delivered, bounced=baseline_final - delivered)
    today = figures(attempts=100, delivered=80, bounced=20)
    pair = ("198.51.100.5", "google")
    assert [r.kind for r in rules.regressions(DAY, {pair: today}, {pair: base}, 7, T)] == kinds


@pytest.mark.parametrize(
    ("f", "kinds"),
    [
        (figures(delivered=65, bounced=35), []),  # exactly 65% is healthy
        (figures(delivered=64, bounced=36), [rules.HEALTH_DELIVERY]),
        (figures(delivered=100, policy_blocked=150), []),  # exactly 150 is healthy
        (figures(delivered=100, policy_blocked=151), [rules.HEALTH_BLOCKS]),
        (figures(pending=40), []),  # nothing final yet: no delivery verdict
    ],
)
def test_health_boundaries(f: Figures, kinds: list[str]) -> None:
    assert [a.kind for a in rules.health("main", DAY, f, HealthSettings())] == kinds
