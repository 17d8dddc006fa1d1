"""What a user meets first: global options anywhere, windows, JSON on failure, tables in mail,
empty windows that say where the data is, a demo that deletes nothing of theirs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from inboxops.cli import hoist_global_options, root
from inboxops.cli.context import AppContext
from inboxops.cli.render import Col, print_table
from tests.helpers import NOW, aggregate_xml, write_report


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(root, args, env=env, obj=AppContext(clock=lambda: NOW))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def db_with_reports(sqlite_url: str, tmp_path: Path) -> str:
    days = [datetime(2024, 3, d, tzinfo=UTC) for d in (5, 6, 7)]
    for i, day in enumerate(days):
        write_report(
            tmp_path / "r",
            f"{i}.xml",
            aggregate_xml(
                report_id=f"r{i}",
                begin=day,
                end=day.replace(hour=23, minute=59, second=59),
                rows=[(f"192.0.2.{i + 1}", 10 * (i + 1), True)],
            ),
        )
    code, _, _ = run(["--db", sqlite_url, "dmarc", "import", str(tmp_path / "r")])
    assert code == 0
    return sqlite_url


# -- item 7: global options anywhere ---------------------------------------------------------


def test_global_options_work_after_the_sub_command(db_with_reports: str, tmp_path: Path) -> None:
    window = ["--since", "2024-03-01", "--until", "2024-03-31", "--json"]
    before = run(["--db", db_with_reports, "dmarc", "summary", *window])
    after = run(["dmarc", "summary", *window, "--db", db_with_reports])
    middle = run(["dmarc", f"--db={db_with_reports}", "summary", "-v", *window])
    assert before[0] == after[0] == middle[0] == 0
    assert json.loads(before[1]) == json.loads(after[1]) == json.loads(middle[1])
    assert len(json.loads(before[1])) == 3


def test_hoisting_leaves_arguments_alone() -> None:
    assert hoist_global_options(["dmarc", "import", "--db", "x.db", "a.xml", "-vv"]) == [
        "--db",
        "x.db",
        "-vv",
        "dmarc",
        "import",
        "a.xml",
    ]
    assert hoist_global_options(["dmarc", "import", "--", "--db"]) == [
        "dmarc",
        "import",
        "--",
        "--db",
    ]


# -- item 8/9: windows -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "2025-01-01", "--until", "2024-01-01"],
        ["--since", "2024-03-06T10:00:00Z", "--until", "2024-03-06T10:00:00Z"],
        ["--days", "100000000"],
        ["--days", "0"],
        ["--since", "2024-02-30"],
        ["--since", "yesterday"],
        ["--days", "3", "--since", "2024-01-01"],
    ],
)
@pytest.mark.parametrize("command", ["summary", "alert", "tls", "failures"])
def test_impossible_windows_are_usage_errors(
    db_with_reports: str, command: str, args: list[str]
) -> None:
    code, out, err = run(["--db", db_with_reports, "dmarc", command, *args])
    assert code == 2, out + err
    assert "healthy" not in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("since", "until", "ips"),
    [
        ("2024-03-06T00:00:00Z", "2024-03-07T00:00:00Z", ["192.0.2.2"]),
        ("2024-03-06T02:00:00+02:00", "2024-03-07T02:00:00+02:00", ["192.0.2.2"]),
        ("2024-03-06", "2024-03-06", ["192.0.2.2"]),  # --until DATE includes that day
        ("2024-03-05 11:00", "2024-03-06 11:00", ["192.0.2.1"]),  # midpoints 11:59:59.5
    ],
)
def test_iso_dates_with_offsets_select_by_report_midpoint(
    db_with_reports: str, since: str, until: str, ips: list[str]
) -> None:
    code, out, _ = run(
        ["--db", db_with_reports, "dmarc", "summary", "--since", since, "--until", until, "--json"]
    )
    assert code == 0
    assert [r["ip"] for r in json.loads(out)] == ips


def test_adjacent_daily_windows_never_count_a_report_twice(sqlite_url: str, tmp_path: Path) -> None:
    """A report spanning 2024-03-06 00:00 -> 2024-03-07 00:00 belongs to March 6 only."""
    write_report(
        tmp_path / "r",
        "day.xml",
        aggregate_xml(
            report_id="day",
            begin=datetime(2024, 3, 6, tzinfo=UTC),
            end=datetime(2024, 3, 7, tzinfo=UTC),
            rows=[("192.0.2.9", 100, True)],
        ),
    )
    run(["--db", sqlite_url, "dmarc", "import", str(tmp_path / "r")])
    totals = []
    for day in ("2024-03-05", "2024-03-06", "2024-03-07"):
        _, out, _ = run(
            ["--db", sqlite_url, "dmarc", "summary", "--since", day, "--until", day, "--json"]
        )
        totals.append(sum(r["messages"] for r in json.loads(out)))
    assert totals == [0, 100, 0]
    for cmd in ("alert", "tls"):  # every view reads windows the same way
        code, _, _ = run(
            ["--db", sqlite_url, "dmarc", cmd, "--since", "2024-03-07", "--until", "2024-03-08"]
        )
        assert code == 0


# -- item 10: empty windows say where the data is ---------------------------------------------


@pytest.mark.parametrize("by", ["ip", "org"])
def test_empty_default_window_names_the_dates_held(db_with_reports: str, by: str) -> None:
    code, out, _ = run(["--db", db_with_reports, "dmarc", "summary", "--by", by])
    assert code == 0
    assert "no DMARC reports for" in out
    assert "3 report(s) from 2024-03-05 to 2024-03-07" in out
    assert "--since 2024-03-05" in out
    code, out, _ = run(["--db", db_with_reports, "dmarc", "summary", "--by", by, "--json"])
    assert json.loads(out) == []


# -- item 11: tables that a mail reader gets -----------------------------------------------


LONG_V6 = "2001:db8:1234:5678:9abc:def0:1234:5678"


def test_tables_at_80_columns_never_cut_addresses_domains_or_numbers() -> None:
    rows = [
        (
            LONG_V6,
            "yes",
            "123456789",
            "mail.very-long-subdomain.example-reporting-organisation.example.com",
            "google.com, Yahoo, Outlook.com, comcast.net, and a rather long list of reporters",
        ),
        ("192.0.2.10", "", "7", "example.com", "Mimecast"),
    ]
    console = Console(width=80, file=None, force_terminal=False, record=True)
    with console.capture() as capture:
        print_table(
            console,
            "DMARC by source IP",
            [
                Col("source IP", "key"),
                Col("own", "key"),
                Col("messages", "number"),
                Col("domain", "key"),
                Col("reporters"),
            ],
            rows,
        )
    text = capture.get()
    for value in (LONG_V6, "123456789", rows[0][3], "192.0.2.10"):
        assert value in text, value
    assert "…" not in text


def test_summary_piped_at_80_columns_keeps_full_ipv6(sqlite_url: str, tmp_path: Path) -> None:
    """The way cron meets it: stdout is not a terminal, rich assumes 80 columns."""
    write_report(
        tmp_path / "r",
        "v6.xml",
        aggregate_xml(report_id="v6", rows=[(LONG_V6, 5, False), ("2001:db8::1", 3, True)]),
    )
    run(["--db", sqlite_url, "dmarc", "import", str(tmp_path / "r")])
    code, out, _ = run(["--db", sqlite_url, "dmarc", "summary"], env={"COLUMNS": "80"})
    assert code == 0
    assert LONG_V6 in out
    assert "…" not in out


# -- item 12: every --json command prints JSON, success or not ---------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["notify", "test", "--json"],  # no channel configured: exit 2
        ["--db", "mysql://u@h/db", "dmarc", "summary", "--json"],
        ["dmarc", "summary", "--json", "--since", "2025-01-01", "--until", "2024-01-01"],
        ["dmarc", "fetch", "--json"],  # no IMAP host
    ],
)
def test_json_commands_print_json_when_they_fail(args: list[str]) -> None:
    code, out, err = run(args)
    assert code in (1, 2)
    payload = json.loads(out)
    assert payload["exit_code"] == code
    assert payload["error"]
    assert "Error" in err or "Usage" in err


def test_notify_test_json_names_sent_and_failed_channels(webhook_server: object) -> None:
    env = {"INBOXOPS_NOTIFY_URLS": "json://127.0.0.1:1/nothing-listens-here"}
    code, out, _ = run(["notify", "test", "--json"], env)
    assert code == 1
    payload = json.loads(out)
    assert payload["failed"] == ["apprise"]
    assert payload["sent"] == []


# -- item 1: the demo deletes nothing it did not create ----------------------------------------


def test_demo_refuses_a_directory_of_the_users(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    (target / "sub").mkdir(parents=True)
    (target / "notes.txt").write_text("keep me")
    (target / "sub" / "x").write_text("me too")
    code, _, err = run(["demo", "--dir", str(target), "--reports", "20", "--log-lines", "5000"])
    assert code == 2
    assert "not an inboxops demo directory" in err
    assert (target / "notes.txt").read_text() == "keep me"
    assert (target / "sub" / "x").read_text() == "me too"


def test_demo_in_cwd_with_files_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("project")
    code, _, err = run(["demo", "--dir", ".", "--reports", "10", "--log-lines", "5000"])
    assert code == 2
    assert "Traceback" not in err
    assert (tmp_path / "README.md").exists()


def test_demo_reruns_replace_only_their_own_files(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    assert run(["demo", "--dir", str(target), "--reports", "20", "--log-lines", "5000"])[0] == 0
    (target / "reports" / "mine.txt").write_text("added by the user")
    assert (
        run(
            ["demo", "--dir", str(target), "--reports", "15", "--seed", "3", "--log-lines", "5000"]
        )[0]
        == 0
    )
    assert (target / "reports" / "mine.txt").read_text() == "added by the user"
    reports = [p for p in (target / "reports").iterdir() if p.name != "mine.txt"]
    assert len(reports) == 15


# -- small things ------------------------------------------------------------------------------


def test_alert_has_domain_like_summary(sqlite_url: str, tmp_path: Path) -> None:
    write_report(
        tmp_path / "r",
        "spoof.xml",
        aggregate_xml(report_id="s", domain="other.example", rows=[("203.0.113.9", 50, False)]),
    )
    run(["--db", sqlite_url, "dmarc", "import", str(tmp_path / "r")])
    code, out, _ = run(["--db", sqlite_url, "dmarc", "alert", "--dry-run", "--json"])
    assert code == 3
    assert len(json.loads(out)) == 1
    code, out, _ = run(
        ["--db", sqlite_url, "dmarc", "alert", "--dry-run", "--json", "--domain", "example.com"]
    )
    assert (code, json.loads(out)) == (0, [])


def test_headline_has_one_full_stop_after_an_org_ending_in_one(
    sqlite_url: str, tmp_path: Path
) -> None:
    write_report(
        tmp_path / "r",
        "s.xml",
        aggregate_xml(org="Test Inc.", report_id="s", rows=[("203.0.113.9", 50, False)]),
    )
    run(["--db", sqlite_url, "dmarc", "import", str(tmp_path / "r")])
    _, out, _ = run(["--db", sqlite_url, "dmarc", "alert", "--dry-run"])
    assert "Reported by Test Inc." in out
    assert "Inc.." not in out


def test_quarantine_export_refuses_to_overwrite(sqlite_url: str, tmp_path: Path) -> None:
    bad = write_report(tmp_path / "in", "bad.xml.gz", b"\x1f\x8b\x08\x00garbage")
    run(["--db", sqlite_url, "dmarc", "import", str(bad)])
    _, out, _ = run(["--db", sqlite_url, "dmarc", "quarantine", "--json"])
    entry = json.loads(out)[0]["id"]
    target = tmp_path / "exists.bin"
    target.write_text("precious")
    args = ["--db", sqlite_url, "dmarc", "quarantine", "--export", str(entry), "--to", str(target)]
    code, _, err = run(args)
    assert code == 2
    assert "--force" in err
    assert target.read_text() == "precious"
    assert run([*args, "--force"])[0] == 0
    assert target.read_bytes() == bad.read_bytes()


def test_notify_failure_does_not_tell_you_to_run_what_you_are_running() -> None:
    env = {"INBOXOPS_TELEGRAM_BOT_TOKEN": "1:x", "INBOXOPS_TELEGRAM_CHAT_ID": "1"}
    env["INBOXOPS_TELEGRAM_API_URL"] = "http://127.0.0.1:1"
    code, _, err = run(["notify", "test"], env)
    assert code == 1
    assert "notify test" not in err


def test_verbose_log_names_nested_gzip_as_given(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import gzip
    import logging

    path = write_report(
        tmp_path / "r", "test.xml.gz.gz", gzip.compress(gzip.compress(aggregate_xml()))
    )
    with caplog.at_level(logging.INFO, logger="inboxops"):
        from inboxops.dmarc.ingest import Ingestor
        from inboxops.dmarc.store import DatabaseSink
        from inboxops.storage.db import open_database

        engine = open_database(sqlite_url)
        Ingestor(DatabaseSink(engine)).ingest_paths([path])
        engine.dispose()
    sources = re.findall(r"source=(\S+)", "\n".join(r.getMessage() for r in caplog.records))
    assert sources
    assert all(s.endswith("test.xml.gz.gz") for s in sources), sources
