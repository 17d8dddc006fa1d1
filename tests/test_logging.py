"""Logging setup: results on stdout stay clean, and credential-carrying URLs never get logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from inboxops.logging import configure


@pytest.fixture
def root_at_debug() -> Iterator[logging.Logger]:
    """A host application (or a log shipper) that turned the root logger up to DEBUG."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.DEBUG)
    yield root
    root.setLevel(before)


def test_url_logging_libraries_stay_at_warning_even_with_debug(
    root_at_debug: logging.Logger,
) -> None:
    """apprise logs Slack/Telegram webhook URLs (tokens included) at DEBUG; httpx logs the
    Telegram URL with the bot token at INFO. Neither -vv nor a DEBUG root may switch them on."""
    configure(2)
    assert logging.getLogger("inboxops").isEnabledFor(logging.DEBUG)
    for name in ("apprise", "httpx", "httpcore", "urllib3", "urllib3.connectionpool"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    configure(0)
    assert not logging.getLogger("inboxops").isEnabledFor(logging.INFO)


def test_reporter_text_cannot_forge_log_lines_or_reach_the_terminal_raw(
    tmp_path: object, sqlite_url: str
) -> None:
    """A report_id with a newline and an ESC sequence, an org with rich markup: the -v log
    keeps one line per event with the value quoted, and tables show the text inert."""
    from pathlib import Path

    from click.testing import CliRunner

    from inboxops.cli import root
    from tests.helpers import aggregate_xml, write_report

    evil_id = "r1&#10;level=ERROR event=forged&#27;[2J"
    doc = aggregate_xml(
        org="[bold red]Evil[/] Org", report_id="x", rows=[("203.0.113.9", 30, False)]
    )
    doc = doc.replace(b"<report_id>x</report_id>", f"<report_id>{evil_id}</report_id>".encode())
    path = write_report(Path(str(tmp_path)) / "in", "evil.xml", doc)
    result = CliRunner().invoke(root, ["-v", "--db", sqlite_url, "dmarc", "import", str(path)])
    assert result.exit_code == 0, result.output
    log_lines = [ln for ln in result.stderr.splitlines() if ln]
    assert log_lines
    assert all(" level=" in ln for ln in log_lines), log_lines  # no line was forged
    assert "\x1b" not in result.stderr
    assert '"r1\\nlevel=ERROR event=forged\\u001b[2J"' in result.stderr or "r1\\n" in result.stderr
    table = CliRunner().invoke(  # 100 columns: the reporters column is the last of seven
        root,
        ["--db", sqlite_url, "dmarc", "summary", "--since", "2020-01-01"],
        env={"COLUMNS": "100"},
    )
    assert "red]Evil[/] Org" in table.stdout  # shown as text (wrapped), not taken as markup
    alerts = CliRunner().invoke(
        root, ["--db", sqlite_url, "dmarc", "alert", "--dry-run", "--since", "2020-01-01"]
    )
    assert "[bold red]Evil[/] Org" in alerts.stdout
    assert "\x1b" not in table.stdout + alerts.stdout
