"""Shared fixtures: the real corpus by path, and every storage test on SQLite *and* PostgreSQL.

PostgreSQL is expected on 127.0.0.1:5432 (trust auth, database ``test``). Locally a missing
server skips the PostgreSQL half; with ``CI=true`` it fails the run, because a skipped storage
test checks nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from inboxops.storage.db import open_database

pytest_plugins = [
    "tests.servers.dovecot",
    "tests.servers.telegram",  # before oauth, which reuses its loopback HTTP helper
    "tests.servers.oauth",
    "tests.servers.dns",
    "tests.servers.postfix",
    "tests.servers.listmonk",
    "tests.listmonk_client_support",
]

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("INBOXOPS_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "corpus" / "dmarc"
PG_ADMIN_URL = os.environ.get(
    "INBOXOPS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, why: str) -> None:
    """Skip locally, fail in CI: a missing real service must never pass silently there."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required test service missing in CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def corpus() -> Path:
    require(CORPUS.is_dir(), f"shared corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own config, database or channels."""
    for name in list(os.environ):
        if name.startswith("INBOXOPS_") and name not in ("INBOXOPS_SHARED", "INBOXOPS_TEST_PG"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture(autouse=True)
def _loopback_dns(
    _isolated_env: None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test asks the machine's resolver either: every command's DNS goes to the loopback
    server (an empty zone, NXDOMAIN for everything, unless the test fills it through the
    ``dns_server`` fixture). Without dnslib the system resolver stays."""
    from tests.servers.dns import DNSServer

    if DNSServer is None:
        return
    server = request.getfixturevalue("dns_server_session")
    monkeypatch.setenv("INBOXOPS_DNS_NAMESERVERS", server.nameserver)


def _pg_available() -> bool:
    try:
        eng = create_engine(PG_ADMIN_URL)
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
    except OperationalError:
        return False
    return True


@pytest.fixture(scope="session")
def pg_ok() -> bool:
    return _pg_available()


@pytest.fixture
def pg_url(pg_ok: bool) -> Iterator[str]:
    """A PostgreSQL URL whose ``search_path`` is a fresh schema, dropped afterwards."""
    require(pg_ok, f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'inboxops.db'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """The test's database at the current schema (both backends, through ``db_url``); disposed
    even when the test fails, so no connection leaks into the next test."""
    eng = open_database(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every storage test runs twice: embedded SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inboxops.db'}"
    return str(request.getfixturevalue("pg_url"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Apply the declared markers to what actually uses the service, so `-m postgres` selects
    every PostgreSQL run (the db_url[postgresql] half too) and `-m "not imap"` skips Dovecot."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        if "pg_url" in fixtures or params.get("db_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)
        if fixtures & {"dovecot", "imap_proxy"}:
            item.add_marker(pytest.mark.imap)
        if fixtures & {"postfix", "postfix_fleet"}:
            item.add_marker(pytest.mark.postfix)
