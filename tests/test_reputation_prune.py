"""`inboxops reputation prune`: attempts past their retention go, the daily trend stays, and a
closed day is never rebuilt from an old log read again. Through the CLI, on both databases."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from inboxops.storage.db import open_database
from inboxops.storage.models import (
    rep_attempts,
    rep_daily,
    rep_expiries,
    rep_horizon,
    rep_notices,
    rep_recipients,
)
from tests.test_reputation import NOW, RELAY, SENT, THROTTLE, Log, run, trend

FIRST_KEPT = date(2026, 11, 14)  # NOW (2026-11-24 21:00 UTC) minus 10 days, as a day


def fleet_log(tmp_path: Path, name: str = "mail.log") -> tuple[Path, int]:
    """Nov 1..23: each day ``day - 1`` deliveries to Gmail and a Yahoo throttle; a retry
    across the first kept day, an expiry before it, notices old and recent, and attempts one
    second either side of midnight. Returns the log and its attempts before FIRST_KEPT."""
    log = Log()
    before = 0
    for d in range(1, 24):
        day = datetime(2026, 11, d, 9, tzinfo=UTC)
        for i in range(d - 1):
            log.message(day + timedelta(seconds=i), f"u{d}-{i}@gmail.com")
        log.message(day + timedelta(minutes=30), f"t{d}@yahoo.com", THROTTLE)
        if day.date() < FIRST_KEPT:
            before += d
    # deferred on the 13th, delivered on the 14th: the recipient counts on the 14th
    qid = log.message(datetime(2026, 11, 13, 22, tzinfo=UTC), "late@yahoo.com", THROTTLE)
    log.attempt(
        datetime(2026, 11, 14, 1, tzinfo=UTC), qid, "late@yahoo.com", SENT, RELAY["yahoo.com"]
    )
    before += 1
    # a pending recipient whose message expired on the 12th
    qid = log.message(datetime(2026, 11, 7, 9, tzinfo=UTC), "gone@yahoo.com", THROTTLE)
    log.raw(
        f"{log.stamp(datetime(2026, 11, 12, 9, tzinfo=UTC))} out05 postfix-out05/qmgr[102]: "
        f"{qid}: from=<news@example.net>, status=expired, returned to sender"
    )
    before += 1
    # bounce notices (from=<>): one long before the first kept day, one within NOTICE_SPAN
    log.message(datetime(2026, 11, 3, 9, tzinfo=UTC), "old@gmail.com", sender="")
    log.message(datetime(2026, 11, 10, 9, tzinfo=UTC), "recent@gmail.com", sender="")
    # the last second of a closed day, the first second of the first kept day
    log.message(datetime(2026, 11, 13, 23, 59, 59, tzinfo=UTC), "edge-a@gmail.com")
    log.message(datetime(2026, 11, 14, 0, 0, 0, tzinfo=UTC), "edge-b@gmail.com")
    before += 1
    path = log.write(tmp_path / name)
    os.utime(path, (NOW.timestamp(),) * 2)
    return path, before


def ingest(db: str, path: Path) -> dict[str, object]:
    code, out, err = run(["--db", db, "reputation", "ingest", "--offline", "--json", str(path)])
    assert code == 0, err
    assert isinstance(out, dict)
    return out


def prune(db: str, *args: str) -> tuple[int, object, str]:
    return run(["--db", db, "reputation", "prune", "--json", *args])


def table_counts(db: str) -> dict[str, object]:
    engine = open_database(db)
    try:
        with engine.connect() as conn:
            return {
                "attempts": conn.scalar(select(func.count()).select_from(rep_attempts)),
                "first_attempt_day": conn.scalar(select(func.min(rep_attempts.c.day))),
                "first_final_day": conn.scalar(select(func.min(rep_recipients.c.final_day))),
                "expiries": conn.scalar(select(func.count()).select_from(rep_expiries)),
                "notices": conn.scalar(select(func.count()).select_from(rep_notices)),
                "daily": conn.scalar(select(func.count()).select_from(rep_daily)),
                "horizon": conn.scalar(select(rep_horizon.c.first_day)),
            }
    finally:
        engine.dispose()


def test_prune_deletes_closed_days_keeps_the_trend_and_a_rerun_deletes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    path, before = fleet_log(tmp_path)
    ingest(db_url, path)
    trend_before, stored = trend(db_url), table_counts(db_url)
    assert stored["expiries"] == 1
    assert stored["notices"] == 2

    code, dry, err = prune(db_url, "--older-than", "10d", "--dry-run")
    assert code == 0, err
    assert table_counts(db_url) == stored  # a dry run changes nothing
    code, done, err = prune(db_url, "--older-than", "10d")
    assert code == 0, err
    assert isinstance(dry, dict)
    assert isinstance(done, dict)
    assert dry["dry_run"] is True
    assert done["dry_run"] is False
    assert done["first_day_kept"] == FIRST_KEPT.isoformat()
    assert dry["counts"] == done["counts"]
    assert done["counts"]["rep_attempts"] == before
    assert done["counts"]["rep_expiries"] == 1
    assert done["counts"]["rep_notices"] == 1  # Nov 3 went; Nov 10 is within NOTICE_SPAN

    after = table_counts(db_url)
    assert after["attempts"] == stored["attempts"] - before  # type: ignore[operator]
    assert str(after["first_attempt_day"]) == "2026-11-14"  # edge-b stayed, edge-a went
    assert str(after["first_final_day"]) == "2026-11-14"
    assert after["expiries"] == 0
    assert after["notices"] == 1
    assert after["daily"] == stored["daily"]
    assert str(after["horizon"]) == FIRST_KEPT.isoformat()
    assert trend(db_url) == trend_before  # every view reads the rollup, which stays

    code, again, _ = prune(db_url, "--older-than", "10d")
    assert code == 0
    assert isinstance(again, dict)
    assert sum(again["counts"].values()) == 0


def test_an_old_log_read_again_after_a_prune_never_rewrites_a_closed_day(
    db_url: str, tmp_path: Path
) -> None:
    """Only part of Nov 12 in a second log: rebuilt from it, the 12th would lose most of its
    figures. Its attempts are skipped and counted instead; the newer line is stored."""
    path, _ = fleet_log(tmp_path)
    ingest(db_url, path)
    prune(db_url, "--older-than", "10d")
    trend_before = trend(db_url)

    log = Log()
    for i in range(3):
        log.message(datetime(2026, 11, 12, 9, 0, i, tzinfo=UTC), f"u12-{i}@gmail.com")
    log.message(datetime(2026, 11, 13, 23, 59, 59, tzinfo=UTC), "edge-a@gmail.com")
    log.message(datetime(2026, 11, 24, 8, tzinfo=UTC), "new@gmail.com")
    log.raw(  # an expiry on a closed day must not reopen it either
        f"{log.stamp(datetime(2026, 11, 12, 10, tzinfo=UTC))} out05 postfix-out05/qmgr[102]: "
        "ABCDEF1234: from=<news@example.net>, status=expired, returned to sender"
    )
    partial = log.write(tmp_path / "partial.log")
    os.utime(partial, (NOW.timestamp(),) * 2)
    result = ingest(db_url, partial)

    assert result["past_retention"] == 4
    assert result["new"] == 1
    assert result["known"] == 0
    assert result["counted"] == 1
    assert result["days"] == ["2026-11-24"]
    rows = trend(db_url)
    assert [r for r in rows if r["date"] != "2026-11-24"] == trend_before
    assert str(table_counts(db_url)["first_attempt_day"]) == "2026-11-14"


def test_an_interrupted_prune_is_finished_by_the_next_and_ingest_respects_it_meanwhile(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A prune killed after closing the days (the horizon is committed first) and before
    emptying them: an ingest in between stores nothing for them, the next prune deletes them."""
    path, before = fleet_log(tmp_path)
    ingest(sqlite_url, path)
    engine = open_database(sqlite_url)
    with engine.begin() as conn:
        conn.execute(rep_horizon.insert().values(id=1, first_day=FIRST_KEPT, set_at=NOW))
    engine.dispose()
    trend_before = trend(sqlite_url)

    rerun = ingest(sqlite_url, path)
    assert rerun["past_retention"] == before
    assert rerun["new"] == 0
    assert trend(sqlite_url) == trend_before

    code, done, _ = prune(sqlite_url, "--older-than", "30d")  # a longer age: the horizon stays
    assert code == 0
    assert isinstance(done, dict)
    assert done["first_day_kept"] == FIRST_KEPT.isoformat()
    assert done["counts"]["rep_attempts"] == before
    assert str(table_counts(sqlite_url)["horizon"]) == FIRST_KEPT.isoformat()


def test_the_age_comes_from_the_flag_then_the_config_else_exit_2(
    sqlite_url: str, tmp_path: Path
) -> None:
    path, before = fleet_log(tmp_path)
    ingest(sqlite_url, path)
    code, _, err = prune(sqlite_url, "--dry-run")
    assert code == 2
    assert "[reputation] retention_days" in err

    cfg = tmp_path / "inboxops.toml"
    cfg.write_text("[reputation]\nretention_days = 10\n")
    code, out, err = run(
        ["--db", sqlite_url, "--config", str(cfg), "reputation", "prune", "--dry-run", "--json"]
    )
    assert code == 0, err
    assert isinstance(out, dict)
    assert out["older_than_days"] == 10
    assert out["counts"]["rep_attempts"] == before

    code, _, err = prune(sqlite_url, "--older-than", "3m")
    assert code == 2
    assert "days or weeks" in err


@pytest.mark.parametrize(("age", "first"), [("1d", "2026-11-23"), ("2w", "2026-11-10")])
def test_the_first_kept_day_is_the_utc_day_of_now_minus_the_age(
    sqlite_url: str, tmp_path: Path, age: str, first: str
) -> None:
    path, _ = fleet_log(tmp_path)
    ingest(sqlite_url, path)
    code, out, _ = prune(sqlite_url, "--older-than", age, "--dry-run")
    assert code == 0
    assert isinstance(out, dict)
    assert out["first_day_kept"] == first
