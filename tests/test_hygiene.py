"""The suite's own promises: markers select what they name, so `-m postgres` runs every
PostgreSQL test and `-m "not imap"` really leaves Dovecot out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def collect(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return [ln for ln in result.stdout.splitlines() if "::" in ln]


def test_postgres_marker_selects_every_postgresql_run() -> None:
    selected = collect("-m", "postgres", "tests/test_storage.py", "tests/test_cli_dmarc.py")
    assert selected
    assert all("postgresql" in t or "pg" in t for t in selected), selected
    everything = collect("tests/test_storage.py", "tests/test_cli_dmarc.py")
    pg_params = [t for t in everything if t.endswith("[postgresql]")]
    assert set(pg_params) <= set(selected)


def test_imap_marker_selects_the_dovecot_tests() -> None:
    selected = collect("-m", "imap", "tests/test_fetch_data_errors.py", "tests/test_cli.py")
    assert selected
    assert all("test_fetch_data_errors.py" in t for t in selected)
