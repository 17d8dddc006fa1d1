"""The repeat/resolve policy every capability's alerts share (inboxops.alerts.policy), pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inboxops.alerts.policy import Finding, Sent, due, plan

T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


@pytest.mark.parametrize(
    ("magnitude", "sent_ago", "want"),
    [
        (10, DAY, True),  # exactly repeat_hours later: repeated
        (10, DAY - timedelta(seconds=1), False),
        (20, timedelta(hours=1), True),  # doubled since it was sent: at once
        (19, timedelta(hours=1), False),
        (1, timedelta(hours=1), False),  # shrinking never re-pages
    ],
)
def test_a_known_alert_repeats_after_the_period_or_when_it_doubles(
    magnitude: int, sent_ago: timedelta, want: bool
) -> None:
    assert due(magnitude, Sent(T0 - sent_ago, 10), T0, DAY) is want


def test_a_new_alert_is_due_and_a_zero_magnitude_doubles_from_one() -> None:
    assert due(0, None, T0, DAY)
    assert not due(1, Sent(T0, 0), T0, DAY)
    assert due(2, Sent(T0, 0), T0, DAY)


def test_plan_sends_the_due_holds_the_rest_and_clears_what_is_gone() -> None:
    previous = {
        ("spoofing", "203.0.113.5"): Sent(T0 - timedelta(hours=1), 30),
        ("spoofing", "203.0.113.9"): Sent(T0 - timedelta(hours=1), 30),
        ("rep_policy_blocks", "192.0.2.27 microsoft"): Sent(T0 - timedelta(hours=2), 25),
    }
    findings = [
        Finding("spoofing", "203.0.113.5", 31, "same spoofer, barely more"),
        Finding("spoofing", "198.51.100.7", 40, "a new spoofer"),
        Finding("rep_policy_blocks", "192.0.2.27 microsoft", 50, "blocks doubled"),
    ]
    out = plan(findings, previous, T0, DAY)
    assert [f.alert for f in out.due] == ["a new spoofer", "blocks doubled"]
    assert [f.alert for f in out.suppressed] == ["same spoofer, barely more"]
    assert out.cleared == [("spoofing", "203.0.113.9")]
