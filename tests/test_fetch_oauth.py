"""`dmarc fetch` with SASL XOAUTH2 on a real Dovecot, tokens from a provider on loopback.

Dovecot's ``oauth2`` passdb asks the double's introspection endpoint about every token it is
shown, so "logged in" means the token really was good, and ``presented_inactive`` lists every
expired or revoked token that reached the server. Microsoft's flow runs through the real msal
against an HTTPS authority on 127.0.0.1 (trusted through ``oauth_ca_file``), Google's through
httpx against the same server.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from inboxops.cli import root
from inboxops.config import Limits, Secret, load_settings
from inboxops.dmarc.dryrun import DryRunSink
from inboxops.dmarc.fetch import fetch_reports
from inboxops.dmarc.ingest import Ingestor
from inboxops.dmarc.oauth import REFRESH_MARGIN, access_tokens, due
from inboxops.dmarc.store import DatabaseSink
from inboxops.errors import ConfigError, ImapError
from inboxops.storage.db import open_database
from tests.servers.dovecot import CuttingProxy, Dovecot
from tests.servers.oauth import CLIENT_SECRET, REFRESH_TOKEN, OAuthDouble
from tests.test_fetch import SEEN, report_mail

PROVIDERS = ["microsoft", "google"]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = open_database(sqlite_url)
    yield engine
    engine.dispose()


def ingestor(engine: Engine) -> Ingestor:
    return Ingestor(DatabaseSink(engine), Limits())


def secrets_of(oauth: OAuthDouble) -> list[str]:
    """Everything that must never appear in an error or a log line."""
    return [CLIENT_SECRET, REFRESH_TOKEN, *oauth.tokens]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_good_token_logs_in_and_fetches(
    provider: str,
    dovecot: Dovecot,
    oauth: OAuthDouble,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every library's debug lines too: no secret in any
    dovecot.append(report_mail(1))
    dovecot.append(report_mail(2))
    settings = oauth.settings(dovecot.settings(), provider)
    stats = fetch_reports(settings, ingestor(engine))
    assert (stats.ingest.reports_new, stats.messages_flagged) == (2, 2)
    assert all(SEEN in f for f in dovecot.flags().values())
    assert oauth.grants == [provider]
    assert len(oauth.introspections) == 1
    assert oauth.presented_inactive == []
    for secret in secrets_of(oauth):
        assert secret not in caplog.text


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_token_about_to_expire_is_renewed_before_it_is_presented(
    provider: str, dovecot: Dovecot, oauth: OAuthDouble, imap_proxy: CuttingProxy, engine: Engine
) -> None:
    """A long run reconnects an hour in (Exchange drops the session when its token runs out):
    the token then has less than the margin to live, so a new one is asked for *before* the
    login and the server never sees the old one again."""
    dovecot.append_many([report_mail(n) for n in range(4)])
    clock = Clock()
    settings = oauth.settings(dovecot.settings(port=imap_proxy.port), provider)
    tokens = access_tokens(settings, clock=clock)
    imap_proxy.cut_on_store()

    def an_hour_passes(_seconds: float) -> None:
        oauth.expire_all()  # the provider's side: the first token is dead now
        clock.now += oauth.lifetime - REFRESH_MARGIN / 2  # ours: not yet expired, but due

    stats = fetch_reports(settings, ingestor(engine), sleep=an_hour_passes, tokens=tokens)
    assert stats.reconnects == 1
    assert (stats.ingest.reports_new, stats.messages_flagged) == (4, 4)
    assert oauth.grants == [provider, provider]  # the token endpoint saw the renewal
    assert tokens.requests == 2
    assert oauth.presented_inactive == []  # and the expired token never reached Dovecot


def test_a_token_refused_before_its_time_is_replaced_once(
    dovecot: Dovecot, oauth: OAuthDouble, engine: Engine
) -> None:
    """The provider ended a token early (revoked sessions, a skewed clock): the login asks
    for a new one and goes on."""
    dovecot.append(report_mail(1))
    settings = oauth.settings(dovecot.settings(), "google")
    tokens = access_tokens(settings, clock=Clock())
    fetch_reports(settings, Ingestor(DryRunSink()), tokens=tokens, dry_run=True)
    oauth.expire_all()
    stats = fetch_reports(settings, ingestor(engine), tokens=tokens)
    assert stats.ingest.reports_new == 1
    assert oauth.grants == ["google", "google"]
    assert len(oauth.presented_inactive) == 1


def test_a_fresh_token_the_server_refuses_is_one_clear_error(
    dovecot: Dovecot, oauth: OAuthDouble
) -> None:
    """The app's token is for another mailbox (no permission on this one): asking again
    would not help, so one error, and the token endpoint is asked once."""
    oauth.user = "someone-else"
    settings = oauth.settings(dovecot.settings(), "microsoft")
    with pytest.raises(ImapError) as info:
        fetch_reports(settings, Ingestor(DryRunSink()))
    message = str(info.value)
    assert "refused the OAuth2 token" in message
    assert "user dmarc" in message
    assert oauth.grants == ["microsoft"]
    for secret in secrets_of(oauth):
        assert secret not in message


def test_revoked_refresh_token_exits_2_through_the_cli(
    dovecot: Dovecot, oauth: OAuthDouble, sqlite_url: str
) -> None:
    dovecot.append(report_mail(1))
    env = {**dovecot.env(), **oauth.env("google")}
    del env["INBOXOPS_IMAP_PASSWORD"]
    ok = CliRunner().invoke(root, ["--db", sqlite_url, "dmarc", "fetch", "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    oauth.revoke()
    dovecot.append(report_mail(2))
    result = CliRunner().invoke(root, ["--db", sqlite_url, "dmarc", "fetch"], env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: Google refused the refresh token (invalid_grant")
    assert "INBOXOPS_IMAP_OAUTH_REFRESH_TOKEN" in lines[0]
    for secret in secrets_of(oauth):
        assert secret not in result.output
    assert SEEN not in dovecot.flags()["<report-2@google.com>"]


def test_revoked_client_secret_exits_2_through_the_cli(
    dovecot: Dovecot, oauth: OAuthDouble, sqlite_url: str, tmp_path: Path
) -> None:
    """Microsoft, configured from a TOML file with the secret in a ``*_file``."""
    secret_file = tmp_path / "client_secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    config = tmp_path / "inboxops.toml"
    config.write_text(
        "[dmarc.imap]\n"
        'auth = "xoauth2"\n'
        'oauth_provider = "microsoft"\n'
        'oauth_tenant = "contoso-tenant-id"\n'
        'oauth_client_id = "inboxops-test-client"\n'
        f'oauth_client_secret_file = "{secret_file}"\n'
        f'oauth_authority = "{oauth.url}"\n'
        f'oauth_ca_file = "{oauth.ca_file}"\n'
    )
    env = {k: v for k, v in dovecot.env().items() if k != "INBOXOPS_IMAP_PASSWORD"}
    args = ["--config", str(config), "--db", sqlite_url, "dmarc", "fetch"]
    dovecot.append(report_mail(1))
    assert CliRunner().invoke(root, args, env=env).exit_code == 0
    oauth.revoke()
    result = CliRunner().invoke(root, args, env=env)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1
    assert "Microsoft refused the client credentials" in result.output
    assert "invalid_client, AADSTS7000215" in result.output
    assert "INBOXOPS_IMAP_OAUTH_CLIENT_SECRET" in result.output
    for secret in secrets_of(oauth):
        assert secret not in result.output


def test_oauth_settings_are_checked_before_anything_runs(dovecot: Dovecot) -> None:
    base = {k: v for k, v in dovecot.env().items() if k != "INBOXOPS_IMAP_PASSWORD"}
    cases = {
        "oauth_provider": {"INBOXOPS_IMAP_AUTH": "xoauth2"},
        "oauth_tenant, oauth_client_secret": {
            "INBOXOPS_IMAP_AUTH": "xoauth2",
            "INBOXOPS_IMAP_OAUTH_PROVIDER": "microsoft",
            "INBOXOPS_IMAP_OAUTH_CLIENT_ID": "app",
        },
        "give an https:// URL": {
            "INBOXOPS_IMAP_AUTH": "xoauth2",
            "INBOXOPS_IMAP_OAUTH_PROVIDER": "google",
            "INBOXOPS_IMAP_OAUTH_CLIENT_ID": "app",
            "INBOXOPS_IMAP_OAUTH_REFRESH_TOKEN": "r",
            "INBOXOPS_IMAP_OAUTH_TOKEN_URL": "http://oauth.example/token",
        },
    }
    for expected, extra in cases.items():
        result = CliRunner().invoke(root, ["dmarc", "fetch"], env={**base, **extra})
        assert result.exit_code == 2, result.output
        assert expected in result.output


def test_an_unknown_tenant_and_an_unreachable_provider(
    dovecot: Dovecot, oauth: OAuthDouble
) -> None:
    unknown = oauth.settings(dovecot.settings(), "microsoft", oauth_tenant="no-such-tenant")
    with pytest.raises(ConfigError, match="no tenant 'no-such-tenant'"):
        fetch_reports(unknown, Ingestor(DryRunSink()))
    gone = oauth.settings(
        dovecot.settings(), "google", oauth_token_url="https://127.0.0.1:1/token", timeout=2.0
    )
    with pytest.raises(ImapError, match="cannot reach the Google token endpoint"):
        fetch_reports(gone, Ingestor(DryRunSink()))
    untrusted = oauth.settings(dovecot.settings(), "google", oauth_ca_file="")
    with pytest.raises(ImapError, match="ConnectError"):  # a self-signed certificate
        fetch_reports(untrusted, Ingestor(DryRunSink()))
    assert oauth.grants == []


def test_msal_missing_is_a_config_error_naming_the_extra(
    oauth: OAuthDouble, tmp_path: Path
) -> None:
    """Without the optional msal (``inboxops[oauth]``) the Microsoft flow says what to install.
    A separate interpreter in which ``import msal`` fails, as when it is not installed."""
    script = (
        "import sys; sys.modules['msal'] = None\n"
        "from inboxops.cli import main\n"
        "sys.argv = ['inboxops', '--db', sys.argv[1], 'dmarc', 'fetch']\n"
        "main()\n"
    )
    env = {
        "INBOXOPS_IMAP_HOST": "127.0.0.1",
        "INBOXOPS_IMAP_USER": "dmarc",
        "INBOXOPS_IMAP_SECURITY": "none",
        **oauth.env("microsoft"),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{tmp_path / 'db.sqlite'}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'inboxops[oauth]'" in result.stderr


def test_renewal_is_due_within_the_margin() -> None:
    assert due(0.0, None)
    assert not due(1000.0, 1000.0 + REFRESH_MARGIN + 1)
    assert due(1000.0, 1000.0 + REFRESH_MARGIN)
    assert due(1000.0, 900.0)


def test_oauth_secrets_come_from_env_and_files(tmp_path: Path) -> None:
    token_file = tmp_path / "refresh"
    token_file.write_text("from-a-file\n")
    settings = load_settings(
        env={
            "INBOXOPS_IMAP_AUTH": "XOAUTH2",
            "INBOXOPS_IMAP_OAUTH_PROVIDER": "google",
            "INBOXOPS_IMAP_OAUTH_CLIENT_SECRET": "from-env",
            "INBOXOPS_IMAP_OAUTH_REFRESH_TOKEN_FILE": str(token_file),
        }
    )
    imap = settings.dmarc.imap
    assert (imap.auth, imap.oauth_provider) == ("xoauth2", "google")
    assert imap.oauth_client_secret == Secret("from-env")
    assert imap.oauth_refresh_token == Secret("from-a-file")
    assert "from-env" not in repr(imap)
