"""`inboxops dmarc import|summary` through the CLI on both databases: the --json contracts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from inboxops.cli import root
from inboxops.cli.context import AppContext
from inboxops.storage.db import open_database
from inboxops.storage.models import dmarc_auth_results, dmarc_records, dmarc_reports, quarantine
from tests.helpers import (
    NOW,
    aggregate_xml,
    allow_writes,
    refuse_writes_operationally,
    write_report,
)

IMPORT_KEYS = {
    "reports_new",
    "reports_known",
    "records",
    "tls_reports_new",
    "failure_reports_new",
    "not_reports",
    "failed",
}


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    runner = CliRunner()
    result = runner.invoke(root, args, env=env, obj=AppContext(clock=lambda: NOW))
    return result.exit_code, result.stdout


def counts(db_url: str) -> tuple[int, int, int, int]:
    engine = open_database(db_url)
    with engine.connect() as conn:
        out = tuple(
            int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (dmarc_reports, dmarc_records, dmarc_auth_results, quarantine)
        )
    engine.dispose()
    return out  # type: ignore[return-value]


def test_import_corpus_json_contract_and_idempotency(db_url: str, corpus: Path) -> None:
    code, out = run(["--db", db_url, "dmarc", "import", "--json", str(corpus)])
    first = json.loads(out)
    assert set(first) >= IMPORT_KEYS
    assert code == 3  # empty.xml is refused: "checked and found problems"
    assert [f["source"].rsplit("/", 1)[-1] for f in first["failed"]] == ["empty.xml"]
    assert first["reports_new"] >= 18
    assert first["tls_reports_new"] == 4
    assert first["failure_reports_new"] >= 4
    before = counts(db_url)

    code, out = run(["--db", db_url, "dmarc", "import", "--json", str(corpus)])
    second = json.loads(out)
    assert second["reports_new"] == 0
    assert second["tls_reports_new"] == 0
    assert second["failure_reports_new"] == 0
    assert second["reports_known"] == (
        first["reports_new"] + first["reports_known"] + first["reports_replaced"]
    )
    assert second["reports_replaced"] == second["reports_conflicting"] == 0
    assert counts(db_url) == before


def test_dry_run_writes_nothing_and_creates_no_database(tmp_path: Path, corpus: Path) -> None:
    """--dry-run against a database that does not exist: parses, creates nothing, and counts
    the four files of extract_report (one report three times, plus another) as it would."""
    target = tmp_path / "never.db"
    code, out = run(
        [
            "--db",
            f"sqlite:///{target}",
            "dmarc",
            "import",
            "--dry-run",
            "--json",
            str(corpus / "extract_report"),
        ]
    )
    payload = json.loads(out)
    assert code == 0
    assert payload["dry_run"] is True
    assert (payload["reports_new"], payload["reports_known"]) == (2, 2)
    assert {r["org_name"] for r in payload["reports"]} == {"google.com", "fred.com"}
    assert not target.exists()


def test_summary_per_ip_and_org(db_url: str, tmp_path: Path) -> None:
    reports = tmp_path / "r"
    write_report(
        reports,
        "a.xml",
        aggregate_xml(
            report_id="a",
            rows=[("192.0.2.10", 90, True), ("192.0.2.10", 10, False), ("203.0.113.5", 30, False)],
        ),
    )
    write_report(
        reports,
        "b.xml",
        aggregate_xml(org="Yahoo", report_id="b", rows=[("192.0.2.10", 100, True)]),
    )
    code, _ = run(["--db", db_url, "dmarc", "import", str(reports)])
    assert code == 0
    env = {"INBOXOPS_OWN_IPS": "192.0.2.0/28"}
    code, out = run(["--db", db_url, "dmarc", "summary", "--days", "7", "--json"], env)
    assert code == 0
    rows = {r["ip"]: r for r in json.loads(out)}
    own = rows["192.0.2.10"]
    assert (own["messages"], own["passed"], own["failed"], own["own"]) == (200, 190, 10, True)
    assert own["pass_rate"] == 0.95
    assert own["orgs"] == ["Yahoo", "google.com"]
    spoof = rows["203.0.113.5"]
    assert (spoof["messages"], spoof["failed"], spoof["own"]) == (30, 30, False)

    code, out = run(["--db", db_url, "dmarc", "summary", "--by", "org", "--json"], env)
    orgs = {o["org"]: o for o in json.loads(out)}
    assert orgs["google.com"]["messages"] == 130
    assert orgs["google.com"]["ips"] == 2
    assert orgs["Yahoo"]["pass_rate"] == 1.0


def test_summary_window_and_domain_filters(sqlite_url: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    old = aggregate_xml(
        report_id="old",
        begin=datetime(2026, 10, 1, tzinfo=UTC),
        end=datetime(2026, 10, 1, 23, tzinfo=UTC),
        rows=[("198.51.100.1", 5, True)],
    )
    other = aggregate_xml(report_id="other", domain="other.org", rows=[("198.51.100.2", 7, True)])
    write_report(tmp_path / "r", "old.xml", old)
    write_report(tmp_path / "r", "other.xml", other)
    run(["--db", sqlite_url, "dmarc", "import", str(tmp_path / "r")])
    _, out = run(["--db", sqlite_url, "dmarc", "summary", "--json"])
    assert [r["ip"] for r in json.loads(out)] == ["198.51.100.2"]
    _, out = run(
        [
            "--db",
            sqlite_url,
            "dmarc",
            "summary",
            "--since",
            "2026-09-30",
            "--until",
            "2026-10-02",
            "--json",
        ]
    )
    assert [r["ip"] for r in json.loads(out)] == ["198.51.100.1"]
    _, out = run(["--db", sqlite_url, "dmarc", "summary", "--domain", "example.com", "--json"])
    assert json.loads(out) == []


def test_window_options_conflict_is_usage_error(sqlite_url: str) -> None:
    code, _ = run(["--db", sqlite_url, "dmarc", "summary", "--days", "3", "--since", "2026-01-01"])
    assert code == 2


@pytest.mark.parametrize("args", [["dmarc", "import"], ["dmarc", "frobnicate"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    code, _ = run(args)
    assert code == 2


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = {
        "INBOXOPS_IMAP_PASSWORD": "imap-secret-1",
        "INBOXOPS_TELEGRAM_BOT_TOKEN": "123:tg-secret-2",
        "INBOXOPS_DB": "postgresql://u:db-secret-3@127.0.0.1/x",
        "INBOXOPS_NOTIFY_URLS": "json://user:apprise-secret-4@127.0.0.1/",
    }
    code, out = run(["config", "show", "--json"], env)
    assert code == 0
    for secret in ("imap-secret-1", "tg-secret-2", "db-secret-3", "apprise-secret-4"):
        assert secret not in out
    view = json.loads(out)
    assert view["dmarc"]["imap"]["password"] == "********"


def test_init_writes_sample_and_refuses_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "inboxops.toml"
    code, _ = run(["init", str(target)])
    assert code == 0
    assert "[dmarc.imap]" in target.read_text()
    assert target.stat().st_mode & 0o077 == 0
    code, _ = run(["init", str(target)])
    assert code == 2
    code, _ = run(["--config", str(target), "config", "show"])
    assert code == 0


def test_quarantine_lists_and_exports_refused_input(db_url: str, tmp_path: Path) -> None:
    bad = write_report(tmp_path / "in", "bad.xml.gz", b"\x1f\x8b\x08\x00garbage-not-deflate")
    code, _ = run(["--db", db_url, "dmarc", "import", str(bad)])
    assert code == 3
    code, out = run(["--db", db_url, "dmarc", "quarantine", "--json"])
    assert code == 0
    [entry] = json.loads(out)
    assert entry["source"].endswith("bad.xml.gz")
    assert "gzip" in entry["reason"]
    assert entry["raw_kept"] is True
    target = tmp_path / "out.bin"
    code, _ = run(
        ["--db", db_url, "dmarc", "quarantine", "--export", str(entry["id"]), "--to", str(target)]
    )
    assert code == 0
    assert target.read_bytes() == bad.read_bytes()
    code, _ = run(["--db", db_url, "dmarc", "quarantine", "--export", "999", "--to", str(target)])
    assert code == 2


def test_storage_failure_mid_import_leaves_no_partial_report(db_url: str, tmp_path: Path) -> None:
    """An operational failure half-way through stops the run with exit 1: the groups committed
    before it stay whole, the open group is rolled back (no report without its records, nothing
    quarantined: it is not the input's fault), and a rerun stores the rest."""
    from inboxops.dmarc.store import GROUP_REPORTS

    total = GROUP_REPORTS + 50
    for n in range(total):
        rows = [(f"192.0.2.{i}", 1, True) for i in range(1, 4)]
        write_report(
            tmp_path / "r", f"{n:04d}.xml", aggregate_xml(report_id=f"r{n:04d}", rows=rows)
        )
    engine = open_database(db_url)
    refuse_writes_operationally(
        engine, "dmarc_auth_results", f"NEW.report_pk > {GROUP_REPORTS + 7}"
    )
    code, out = run(["--db", db_url, "dmarc", "import", "--json", str(tmp_path / "r")])
    assert code == 1
    assert re.search(r"No space left|malformed JSON", json.loads(out)["error"])
    reports, records, auth, quarantined = counts(db_url)
    assert reports == GROUP_REPORTS  # the first group, whole; none of the second
    assert (records, auth, quarantined) == (3 * reports, 6 * reports, 0)
    allow_writes(engine, "dmarc_auth_results")
    engine.dispose()
    code, out = run(["--db", db_url, "dmarc", "import", "--json", str(tmp_path / "r")])
    assert code == 0
    assert json.loads(out)["reports_new"] == total - GROUP_REPORTS
    assert counts(db_url)[:3] == (total, 3 * total, 6 * total)


def test_tls_and_failure_views(db_url: str, corpus: Path) -> None:
    run(["--db", db_url, "dmarc", "import", str(corpus / "smtp_tls"), str(corpus / "failure")])
    since = ["--since", "2010-01-01"]
    code, out = run(["--db", db_url, "dmarc", "tls", *since, "--json"])
    assert code == 0
    tls = {t["policy_domain"]: t for t in json.loads(out)}
    company = tls["company-y.example"]
    assert (company["successful"], company["failed"]) == (5326, 303)
    assert company["failures"][0] == {"result_type": "starttls-not-supported", "sessions": 200}
    assert company["reporters"] == ["Company-X"]
    code, out = run(["--db", db_url, "dmarc", "failures", *since, "--json"])
    assert code == 0
    failures = json.loads(out)
    assert len(failures) == 4  # the CRLF copy of the LinkedIn report is the same report
    assert failures[0]["source_ip"] == "203.0.113.68"  # newest first (2025-04-07)
    assert {f["reported_domain"] for f in failures} == {"example.com", "domain.de", "cardinal.com"}
    code, out = run(["--db", db_url, "dmarc", "tls", "--domain", "nope.example", "--json"])
    assert json.loads(out) == []
