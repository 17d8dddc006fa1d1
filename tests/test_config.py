"""Settings: file < environment < flags, validation, secrets that never print themselves."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from inboxops.cli.config_cmd import sample_config
from inboxops.config import Secret, load_settings
from inboxops.errors import ConfigError

ENV_CONTRACT = [
    "INBOXOPS_DB",
    "INBOXOPS_IMAP_HOST",
    "INBOXOPS_IMAP_PORT",
    "INBOXOPS_IMAP_USER",
    "INBOXOPS_IMAP_PASSWORD",
    "INBOXOPS_IMAP_FOLDER",
    "INBOXOPS_IMAP_SECURITY",
    "INBOXOPS_OWN_IPS",
    "INBOXOPS_TELEGRAM_BOT_TOKEN",
    "INBOXOPS_TELEGRAM_CHAT_ID",
    "INBOXOPS_TELEGRAM_API_URL",
    "INBOXOPS_NOTIFY_URLS",
]


def test_defaults_without_file_or_env() -> None:
    s = load_settings(env={})
    assert s.db_url == ""
    assert s.imap.folder == "INBOX"
    assert s.imap.security == "ssl"
    assert s.imap.effective_port == 993
    assert s.alerts.min_pass_rate == 0.95
    assert s.alerts.spoof_min_failed == 20
    assert s.telegram.api_url == "https://api.telegram.org"


def test_sample_config_parses_and_documents_every_env_name(tmp_path: Path) -> None:
    """`inboxops init` output is valid TOML and names each public environment variable."""
    path = tmp_path / "inboxops.toml"
    path.write_text(sample_config())
    s = load_settings(path, env={})
    assert s.own_ips == (
        ipaddress.ip_network("192.0.2.10/32"),
        ipaddress.ip_network("198.51.100.0/28"),
    )
    text = sample_config()
    missing = [name for name in ENV_CONTRACT if name not in text]
    assert missing == []


def test_env_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[database]\nurl = "sqlite:///a.db"\n[dmarc]\nown_ips = ["192.0.2.1"]\n'
        '[dmarc.imap]\nhost = "file-host"\nport = 1993\nsecurity = "ssl"\n'
    )
    env = {
        "INBOXOPS_DB": "sqlite:///b.db",
        "INBOXOPS_IMAP_HOST": "env-host",
        "INBOXOPS_IMAP_PORT": "1143",
        "INBOXOPS_IMAP_SECURITY": "STARTTLS",
        "INBOXOPS_IMAP_FOLDER": "Reports",
        "INBOXOPS_OWN_IPS": "203.0.113.0/24, 2001:db8::1",
        "INBOXOPS_NOTIFY_URLS": "json://127.0.0.1:1/a,json://127.0.0.1:1/b",
        "INBOXOPS_TELEGRAM_API_URL": "http://127.0.0.1:9/",
    }
    s = load_settings(path, env=env)
    assert s.db_url == "sqlite:///b.db"
    assert (s.imap.host, s.imap.port, s.imap.security, s.imap.folder) == (
        "env-host",
        1143,
        "starttls",
        "Reports",
    )
    assert [str(n) for n in s.own_ips] == ["203.0.113.0/24", "2001:db8::1/128"]
    assert len(s.notify_urls) == 2
    assert s.telegram.api_url == "http://127.0.0.1:9/"


def test_config_path_from_env(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[dmarc.imap]\nhost = "h"\n')
    assert load_settings(env={"INBOXOPS_CONFIG": str(path)}).imap.host == "h"


def test_secret_from_file_and_masked(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("hunter2\n")
    path = tmp_path / "c.toml"
    path.write_text(f'[dmarc.imap]\npassword_file = "{secret_file}"\n')
    s = load_settings(path, env={})
    assert s.imap.password.reveal() == "hunter2"
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.imap.password)
    assert Secret("x") == Secret("x")


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"INBOXOPS_IMAP_SECURITY": "tls13"}, "INBOXOPS_IMAP_SECURITY"),
        ({"INBOXOPS_OWN_IPS": "192.0.2.300"}, "INBOXOPS_OWN_IPS"),
        ({"INBOXOPS_IMAP_PORT": "imap"}, "INBOXOPS_IMAP_PORT"),
        ({"INBOXOPS_TELEGRAM_API_URL": "ftp://x"}, "INBOXOPS_TELEGRAM_API_URL"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inboxops init"):
        load_settings(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[dmarc\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[dmarc.limits]\nmax_bombs = 3\n")
    with pytest.raises(ConfigError, match="max_bombs"):
        load_settings(unknown, env={})


def test_thresholds_validated(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[dmarc.alerts]\nmin_pass_rate = 95\n")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        load_settings(path, env={})
