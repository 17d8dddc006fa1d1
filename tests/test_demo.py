"""The demo generator tells its story, deterministically; `inboxops demo` shows it end to end."""

from __future__ import annotations

import gzip
import json
import zipfile
from collections import defaultdict
from pathlib import Path

from click.testing import CliRunner
from lxml import etree

from inboxops.cli import root
from inboxops.cli.context import AppContext
from inboxops.demo.generate import BROKEN_OWN_IP, SPOOFER, generate_large_report, generate_reports
from tests.helpers import NOW


def _xml(path: Path) -> bytes:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return archive.read(archive.namelist()[0])
    return path.read_bytes()


def _totals(paths: list[Path]) -> dict[str, list[int]]:
    """Per IP: [messages, passed], read back from the XML itself."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for path in paths:
        root_el = etree.fromstring(_xml(path))
        for record in root_el.iter("{*}record"):
            ip = record.findtext("{*}row/{*}source_ip")
            count = int(record.findtext("{*}row/{*}count") or 0)
            ok = "pass" in (
                record.findtext("{*}row/{*}policy_evaluated/{*}dkim"),
                record.findtext("{*}row/{*}policy_evaluated/{*}spf"),
            )
            assert ip
            totals[ip][0] += count
            totals[ip][1] += count if ok else 0
    return totals


def test_reports_are_well_formed_mixed_and_deterministic(tmp_path: Path) -> None:
    first = generate_reports(tmp_path / "a", count=60, seed=3, start=NOW)
    again = generate_reports(tmp_path / "b", count=60, seed=3, start=NOW)
    other = generate_reports(tmp_path / "c", count=60, seed=4, start=NOW)
    assert len(first) == 60
    assert {p.suffix for p in first} == {".xml", ".gz", ".zip"}
    assert [_xml(p) for p in first] == [_xml(p) for p in again]
    assert [_xml(p) for p in first] != [_xml(p) for p in other]
    namespaces = {etree.fromstring(_xml(p)).tag for p in first}
    assert "{urn:ietf:params:xml:ns:dmarc-2.0}feedback" in namespaces
    assert "feedback" in namespaces


def test_the_story_holds(tmp_path: Path) -> None:
    totals = _totals(generate_reports(tmp_path, count=300, seed=7, start=NOW))
    messages, passed = totals[BROKEN_OWN_IP]
    assert 0.7 < passed / messages < 0.9
    assert totals[SPOOFER][0] - totals[SPOOFER][1] >= 40
    for ip in ("192.0.2.10", "192.0.2.11"):
        assert totals[ip][1] / totals[ip][0] > 0.99


def test_large_report_is_streamed_and_complete(tmp_path: Path) -> None:
    path = generate_large_report(tmp_path / "big.xml", records=3000)
    records = list(etree.fromstring(path.read_bytes()).iter("{*}record"))
    assert len(records) == 3000
    assert len({r.findtext("{*}row/{*}source_ip") for r in records}) == 3000


def test_inboxops_demo_end_to_end(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        root,
        ["demo", "--dir", str(tmp_path / "demo"), "--reports", "150"],
        obj=AppContext(clock=lambda: NOW),
    )
    assert result.exit_code == 0, result.output
    assert "own_ip_failing" in result.stdout
    assert f"Own IP {BROKEN_OWN_IP}" in result.stdout
    assert f"Spoofing from {SPOOFER}" in result.stdout
    assert (tmp_path / "demo" / "inboxops-demo.db").exists()
    # the reputation half: the blocked Microsoft IP is red today, alerted with the receiver's
    # own words, and the end-of-day health check of every pool is printed
    trend = [
        line.split()
        for line in result.stdout.splitlines()
        if line.strip().startswith("192.0.2.27 ")
    ]
    assert trend[0][:2] == ["192.0.2.27", "microsoft/consumer"]
    assert "red" in trend[0]
    assert "rep_policy_blocks 192.0.2.27 -> microsoft" in result.stdout
    assert "rep_delivery_drop 192.0.2.27 -> microsoft" in result.stdout
    assert "reply: host " in result.stdout
    assert "5.7.1" in result.stdout
    assert not any(
        "rep_" in line and "192.0.2.27" not in line for line in result.stdout.splitlines()
    )
    for pool in ("hc", "main", "relay"):
        assert f"pool {pool}: delivery" in result.stdout
    assert (tmp_path / "demo" / "maillog" / "mail.log").stat().st_size > 1_000_000
    # the follow-up commands it prints work as printed, on the demo's own config file
    config = str(tmp_path / "demo" / "inboxops-demo.toml")
    assert f"inboxops --config {config} reputation trend --days 14" in result.stdout
    follow = CliRunner().invoke(
        root,
        ["--config", config, "reputation", "trend", "--days", "14", "--json"],
        obj=AppContext(clock=lambda: NOW),
    )
    assert follow.exit_code == 0, follow.output
    rows = json.loads(follow.stdout)
    story = [r for r in rows if r["sending_ip"] == "192.0.2.27" and r["date"] == "2026-11-24"]
    assert story
    assert {r["colour"] for r in story} == {"red"}
    history = CliRunner().invoke(
        root, ["--config", config, "health", "history", "--json"], obj=AppContext(clock=lambda: NOW)
    )
    assert {r["pool"] for r in json.loads(history.stdout)} == {"hc", "main", "relay"}


def test_large_report_has_no_unusable_records(tmp_path: Path) -> None:
    """Every generated record must survive our own parser (IPv6 sources included)."""
    from inboxops.dmarc.parse import AggregateParser

    path = generate_large_report(tmp_path / "big.xml", records=70_000)
    with path.open("rb") as fh:
        parser = AggregateParser(fh)
        parser.read_meta()
        assert sum(1 for _ in parser.records()) == 70_000
    assert parser.dropped == 0
