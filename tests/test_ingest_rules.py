"""Import rules found by the trial and the audit: names and content, keys, conflicts, NUL bytes,
dropped records, dry runs, the stored DMARC verdict. On SQLite and PostgreSQL, via the CLI."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from inboxops.cli import root
from inboxops.cli.context import AppContext
from inboxops.storage.db import open_database
from inboxops.storage.models import (
    dmarc_records,
    dmarc_reports,
    quarantine,
    tls_reports,
)
from tests.helpers import NOW, aggregate_xml, refuse_values, write_report


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    result = CliRunner().invoke(root, args, env=env, obj=AppContext(clock=lambda: NOW))
    try:
        payload = json.loads(result.stdout)
    except ValueError:
        payload = {}
    return result.exit_code, payload, result.stderr


def imp(db_url: str, *paths: Path, dry: bool = False) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    args = ["--db", db_url, "dmarc", "import", "--json", *map(str, paths)]
    return run([*args, "--dry-run"] if dry else args)


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


TLS_REPORT = {
    "organization-name": "Company-X",
    "date-range": {
        "start-datetime": "2024-03-06T00:00:00Z",
        "end-datetime": "2024-03-06T23:59:59Z",
    },
    "contact-info": "sts-reporting@company-x.example",
    "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c795",
    "policies": [
        {
            "policy": {"policy-type": "sts", "policy-domain": "example.com"},
            "summary": {"total-successful-session-count": 10, "total-failure-session-count": 0},
        }
    ],
}


# -- items 14 and 16: a file's name and its content decide together ---------------------------

SUFFIXES = [".xml", ".XML", ".gz", ".xml.gz", ".zip", ".json", ".JSON", ".eml", ".gzip"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_file_named_like_a_report_that_is_not_one_is_refused(
    sqlite_url: str, tmp_path: Path, suffix: str
) -> None:
    bad = write_report(tmp_path / "in", f"report{suffix}", bytes(range(256)) * 8)
    code, out, _err = imp(sqlite_url, bad)
    assert code == 3
    assert out["not_reports"] == 0
    [failed] = out["failed"]
    assert failed["source"].endswith(f"report{suffix}")
    assert "named like a report" in failed["reason"]
    assert out["quarantined"] == 1


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("random.bin", b'{"looks": "like json", "but": "is not a report"}'),
        ("notes.txt", b"<html><body>unrelated XML-ish text</body></html>"),
        ("README", b"This directory holds DMARC reports.\n"),
        ("data.bin", bytes(range(256))),
    ],
)
def test_a_file_whose_name_and_content_say_not_a_report_is_not_one(
    sqlite_url: str, tmp_path: Path, name: str, data: bytes
) -> None:
    path = write_report(tmp_path / "in", name, data)
    code, out, _ = imp(sqlite_url, path)
    assert (code, out["not_reports"], out["failed"], out["quarantined"]) == (0, 1, [], 0)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("unrelated.xml", b"<?xml version='1.0'?><config><a>1</a></config>"),
        ("package.json", b'{"name": "x", "version": "1.0.0"}'),
        ("lunch.eml", b"From: a@example.com\r\nSubject: lunch\r\n\r\nShall we?\r\n"),
    ],
)
def test_unrelated_json_xml_and_mail_named_like_reports_are_treated_alike(
    sqlite_url: str, tmp_path: Path, name: str, data: bytes
) -> None:
    code, out, _ = imp(sqlite_url, write_report(tmp_path / "in", name, data))
    assert code == 3
    assert len(out["failed"]) == 1


def test_a_report_in_a_file_not_named_like_one_is_still_read(
    sqlite_url: str, tmp_path: Path
) -> None:
    xml = write_report(tmp_path / "in", "attachment.bin", gzip.compress(aggregate_xml()))
    tls = write_report(tmp_path / "in", "tls.txt", json.dumps(TLS_REPORT).encode())
    code, out, _ = imp(sqlite_url, xml, tls)
    assert (code, out["reports_new"], out["tls_reports_new"]) == (0, 1, 1)


# -- item 15: no invented keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        b"<feedback></feedback>",
        b"<feedback><report_metadata></report_metadata><policy_published><domain>example.com"
        b"</domain></policy_published><record><row><source_ip>192.0.2.1</source_ip><count>1"
        b"</count></row></record></feedback>",
    ],
)
def test_a_report_without_org_and_id_is_refused_not_invented(
    db_url: str, tmp_path: Path, doc: bytes
) -> None:
    code, out, _ = imp(db_url, write_report(tmp_path / "in", "empty.xml", doc))
    assert code == 3
    assert out["reports_new"] == 0
    engine = open_database(db_url)
    assert count(engine, dmarc_reports) == 0
    engine.dispose()


# -- item 20: keys are never cut ----------------------------------------------------------------


def test_report_ids_differing_after_255_characters_are_two_reports(
    db_url: str, tmp_path: Path
) -> None:
    stem = "x" * 255
    write_report(tmp_path / "in", "a.xml", aggregate_xml(report_id=stem + "A"))
    write_report(
        tmp_path / "in",
        "b.xml",
        aggregate_xml(report_id=stem + "B", rows=[("203.0.113.5", 50, False)]),
    )
    code, out, _ = imp(db_url, tmp_path / "in")
    assert (code, out["reports_new"], out["reports_known"]) == (0, 2, 0)
    engine = open_database(db_url)
    with engine.connect() as conn:
        ids = sorted(conn.execute(select(dmarc_reports.c.report_id)).scalars())
    engine.dispose()
    assert ids == [stem + "A", stem + "B"]
    too_long = write_report(tmp_path / "long", "c.xml", aggregate_xml(report_id="y" * 1025))
    code, out, _ = imp(db_url, too_long)
    assert code == 3
    assert "over 1024" in out["failed"][0]["reason"]


# -- item 17: two different copies of one report ------------------------------------------------


def test_a_second_different_copy_is_conflicting_not_silently_known(
    db_url: str, tmp_path: Path
) -> None:
    first = write_report(tmp_path / "a", "first.xml", aggregate_xml(report_id="same"))
    second = write_report(
        tmp_path / "b",
        "second.xml",
        aggregate_xml(
            report_id="same", rows=[("192.0.2.10", 10, True), ("203.0.113.7", 12, False)]
        ),
    )
    assert imp(db_url, first)[0] == 0
    code, out, err = imp(db_url, second)
    assert code == 0
    assert (out["reports_new"], out["reports_known"], out["reports_conflicting"]) == (0, 0, 1)
    [conflict] = out["conflicts"]
    assert conflict["stored_source"].endswith("first.xml")
    assert conflict["source"].endswith("second.xml")
    assert "first.xml" in err
    assert "second.xml" in err
    engine = open_database(db_url)
    assert count(engine, dmarc_records) == 1  # the first copy stays; nothing counted twice
    engine.dispose()
    # the same copy again, or the same records in other bytes, are simply known
    regz = write_report(tmp_path / "c", "again.xml.gz", gzip.compress(first.read_bytes()))
    spaced = write_report(tmp_path / "d", "spaced.xml", first.read_bytes().replace(b"><", b">\n<"))
    code, out, _ = imp(db_url, regz, spaced)
    assert (out["reports_known"], out["reports_conflicting"]) == (2, 0)


def test_a_clean_copy_replaces_one_recovered_from_malformed_xml(
    db_url: str, tmp_path: Path, corpus: Path
) -> None:
    """The corpus's invalid_xml.xml is a damaged copy of the veeam report."""
    damaged = corpus / "aggregate" / "invalid_xml.xml"
    clean = corpus / "aggregate" / "veeam.com!example.com!1530133200!1530219600.xml"
    code, out, _ = imp(db_url, damaged)
    assert out["reports_new"] == 1
    code, out, _ = imp(db_url, clean)
    assert (code, out["reports_replaced"], out["reports_conflicting"]) == (0, 1, 0)
    engine = open_database(db_url)
    with engine.connect() as conn:
        recovered, source, n = conn.execute(
            select(dmarc_reports.c.recovered, dmarc_reports.c.source, dmarc_reports.c.record_count)
        ).one()
        stored = conn.execute(select(func.count()).select_from(dmarc_records)).scalar_one()
    engine.dispose()
    assert (recovered, stored) == (False, n)
    assert source.endswith(clean.name)
    code, out, _ = imp(db_url, damaged)  # the damaged copy again: known, the clean one stays
    assert (out["reports_known"], out["reports_replaced"]) == (1, 0)


# -- item 13: dry runs tell the truth -----------------------------------------------------------


def test_dry_run_reads_the_database_and_its_own_run(db_url: str, tmp_path: Path) -> None:
    stored = write_report(tmp_path / "a", "stored.xml", aggregate_xml(report_id="stored"))
    assert imp(db_url, stored)[0] == 0
    six = tmp_path / "six"
    data = aggregate_xml(report_id="one-key")
    for i in range(6):
        write_report(six, f"copy{i}.xml", data)
    code, out, _ = imp(db_url, stored, six, dry=True)
    assert (code, out["reports_new"], out["reports_known"]) == (0, 1, 6)
    assert {r["outcome"] for r in out["reports"]} == {"new", "known"}
    conflicting = write_report(
        tmp_path / "b", "x.xml", aggregate_xml(report_id="stored", rows=[("203.0.113.1", 3, False)])
    )
    code, out, _ = imp(db_url, conflicting, dry=True)
    assert out["reports_conflicting"] == 1
    engine = open_database(db_url)
    assert count(engine, dmarc_reports) == 1  # the dry runs wrote nothing
    engine.dispose()


# -- item 18: one NUL byte, and a value the database refuses -------------------------------------


def test_nul_in_a_tls_report_is_cleaned_and_the_batch_goes_on(db_url: str, tmp_path: Path) -> None:
    evil = dict(TLS_REPORT, **{"organization-name": "evil\u0000org\u001b[31m", "report-id": "e"})
    write_report(tmp_path / "in", "a-evil.json", json.dumps(evil).encode())
    write_report(tmp_path / "in", "b.xml", aggregate_xml(report_id="b"))
    write_report(tmp_path / "in", "c.xml", aggregate_xml(report_id="c"))
    code, out, _ = imp(db_url, tmp_path / "in")
    assert (code, out["reports_new"], out["tls_reports_new"]) == (0, 2, 1)
    engine = open_database(db_url)
    with engine.connect() as conn:
        org = conn.execute(select(tls_reports.c.org_name)).scalar_one()
    engine.dispose()
    assert org == "evil\ufffdorg\ufffd[31m"  # the same on SQLite and PostgreSQL


def test_a_value_the_database_refuses_quarantines_only_that_report(
    db_url: str, tmp_path: Path
) -> None:
    engine = open_database(db_url)
    refuse_values(engine, "dmarc_records", "source_ip", "203.0.113.66")
    for name in ("a", "b", "c"):
        write_report(tmp_path / "in", f"{name}.xml", aggregate_xml(report_id=name))
    write_report(
        tmp_path / "in",
        "bad.xml",
        aggregate_xml(report_id="bad", rows=[("192.0.2.1", 1, True), ("203.0.113.66", 9, False)]),
    )
    code, out, _ = imp(db_url, tmp_path / "in")
    assert code == 3
    assert out["reports_new"] == 3
    [failed] = out["failed"]
    assert failed["source"].endswith("bad.xml")
    assert "refused a value" in failed["reason"]
    assert count(engine, dmarc_reports) == 3
    assert count(engine, dmarc_records) == 3  # nothing of the refused report half-stored
    assert count(engine, quarantine) == 1
    engine.dispose()


# -- item 24: dropped records say why -----------------------------------------------------------


def _records_xml(*rows: tuple[str, str]) -> bytes:
    base = aggregate_xml(report_id="drops", rows=[("192.0.2.1", 1, True)]).decode()
    extra = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated>"
        "<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>"
        "</row><identifiers><header_from>example.com</header_from></identifiers></record>"
        for ip, n in rows
    )
    return base.replace("</feedback>", extra + "</feedback>").encode()


def test_dropped_records_are_counted_per_reason(db_url: str, tmp_path: Path) -> None:
    doc = _records_xml(
        ("192.0.2.2", "-5"),
        ("192.0.2.3", "1e3"),
        ("192.0.2.4", "1000000000000000000000000000000"),
        ("mail.example.com", "4"),
        ("", "4"),
    )
    code, out, _ = imp(db_url, write_report(tmp_path / "in", "drops.xml", doc))
    assert (code, out["reports_new"], out["records"], out["records_dropped"]) == (0, 1, 1, 5)
    assert out["records_dropped_by_reason"] == {
        "count is not a whole number": 2,
        "count is implausibly large": 1,
        "source_ip is not an IP address": 1,
        "source_ip missing": 1,
    }
    engine = open_database(db_url)
    with engine.connect() as conn:
        errors, dropped, records, messages = conn.execute(
            select(
                dmarc_reports.c.errors,
                dmarc_reports.c.dropped_records,
                dmarc_reports.c.record_count,
                dmarc_reports.c.message_count,
            )
        ).one()
    engine.dispose()
    assert (dropped, records, messages) == (5, 1, 1)  # the report's row says what the run said
    note = next(e for e in errors if e.startswith("dropped 5"))
    assert "'mail.example.com'" in note


def test_a_report_whose_only_record_is_bad_is_refused(db_url: str, tmp_path: Path) -> None:
    doc = aggregate_xml(report_id="bad-only", rows=[("192.0.2.1", 1, True)]).replace(
        b"<source_ip>192.0.2.1</source_ip>", b"<source_ip>mail.example.com</source_ip>"
    )
    code, out, _ = imp(db_url, write_report(tmp_path / "in", "only-bad.xml", doc))
    assert (code, out["reports_new"], out["quarantined"]) == (3, 0, 1)
    assert "no usable record (1 source_ip is not an IP address)" in out["failed"][0]["reason"]


# -- item 19: the stored DMARC verdict, end to end -----------------------------------------------


def verdict_xml(rows: list[tuple[str, int, str, str, str, str]]) -> bytes:
    """Rows of (ip, count, policy dkim, policy spf, dkim auth domain, spf auth domain)."""
    records = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated>"
        f"<disposition>none</disposition><dkim>{pd}</dkim><spf>{ps}</spf></policy_evaluated>"
        "</row><identifiers><header_from>example.com</header_from></identifiers><auth_results>"
        f"<dkim><domain>{dd}</domain><result>pass</result></dkim>"
        f"<spf><domain>{sd}</domain><result>pass</result></spf></auth_results></record>"
        for ip, n, pd, ps, dd, sd in rows
    )
    return (
        "<feedback><report_metadata><org_name>google.com</org_name><report_id>v</report_id>"
        "<date_range><begin>1763769600</begin><end>1763855999</end></date_range>"
        "</report_metadata><policy_published><domain>example.com</domain><p>reject</p>"
        f"</policy_published>{records}</feedback>"
    ).encode()


@pytest.mark.parametrize(
    ("rows", "rate", "alerts"),
    [
        # DKIM aligned pass, SPF fail (forwarded mail): a DMARC pass
        ([("192.0.2.10", 100, "pass", "fail", "example.com", "fwd.example")], 1.0, 0),
        # SPF aligned pass, DKIM fail (unsigned stream): a DMARC pass
        ([("192.0.2.10", 100, "fail", "pass", "other.example", "example.com")], 1.0, 0),
        # both fail although auth_results pass for unaligned domains: a failure
        ([("192.0.2.10", 100, "fail", "fail", "esp.example", "esp.example")], 0.0, 1),
        # mixed: 86 DKIM-only passes, 14 failing
        (
            [
                ("192.0.2.10", 86, "pass", "fail", "example.com", "x.example"),
                ("192.0.2.10", 14, "fail", "fail", "x.example", "x.example"),
            ],
            0.86,
            1,
        ),
    ],
)
def test_dkim_only_and_spf_only_passes_count_as_passes(
    db_url: str,
    tmp_path: Path,
    rows: list[tuple[str, int, str, str, str, str]],
    rate: float,
    alerts: int,
) -> None:
    imp(db_url, write_report(tmp_path / "in", "v.xml", verdict_xml(rows)))
    env = {"INBOXOPS_OWN_IPS": "192.0.2.0/24"}
    window = ["--since", "2025-11-01", "--until", "2025-11-30"]
    _, summary, _ = run(["--db", db_url, "dmarc", "summary", "--json", *window], env)
    assert summary[0]["pass_rate"] == rate
    code, alert_list, _ = run(
        ["--db", db_url, "dmarc", "alert", "--dry-run", "--json", *window], env
    )
    assert len(alert_list) == alerts
    assert code == (3 if alerts else 0)


def test_verdict_derived_from_auth_results_when_policy_evaluated_is_missing(
    db_url: str, tmp_path: Path
) -> None:
    doc = verdict_xml([("192.0.2.10", 10, "pass", "fail", "mail.example.com", "other.example")])
    doc = doc.replace(b"<dkim>pass</dkim><spf>fail</spf>", b"")  # no policy_evaluated verdicts
    imp(db_url, write_report(tmp_path / "in", "derived.xml", doc))
    _, summary, _ = run(
        [
            "--db",
            db_url,
            "dmarc",
            "summary",
            "--json",
            "--since",
            "2025-11-01",
            "--until",
            "2025-11-30",
        ]
    )
    assert summary[0]["pass_rate"] == 1.0  # relaxed DKIM alignment: mail.example.com ~ example.com


# -- item 23: zip directory checked before it is read -------------------------------------------


def _many_entry_zip(entries: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for i in range(entries):
            archive.writestr(f"e{i}", b"")
    return buf.getvalue()


def test_a_zip_with_too_many_entries_is_refused_from_its_end_record(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The member limit is checked from the end-of-central-directory record, before zipfile
    builds an object per entry (800,000 entries cost 400 MB that way)."""
    from inboxops.dmarc.unpack import check_zip_directory
    from inboxops.errors import HostileInputError

    data = _many_entry_zip(20_000)
    with pytest.raises(HostileInputError, match="20000 files"):
        check_zip_directory(io.BytesIO(data), "big.zip", 16)
    check_zip_directory(io.BytesIO(_many_entry_zip(16)), "ok.zip", 16)
    bad = write_report(tmp_path / "in", "big.zip", data)
    code, out, _ = imp(sqlite_url, bad)
    assert code == 3
    assert "more than 16 files" in out["failed"][0]["reason"]
