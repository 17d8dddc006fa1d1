"""Settings: defaults < TOML file < ``INBOXOPS_*`` environment < command-line flags.

The dataclasses below mirror ``inboxops.toml`` one to one (a section is a dataclass, a key a
field) and are the schema the loader (:mod:`inboxops.config.schema`) checks the file against:
unknown keys, misspelt sections and values of the wrong type stop the command with exit code 2
and a line naming ``[section] key``. Loaded and validated once at start
(:func:`load_settings`); every other module receives plain, typed values. Secrets are
:class:`Secret`, whose ``repr``/``str`` are masked, and may come from a ``*_file`` path.

A new setting is one field here (with ``env=`` if it has an environment override), one line in
``config_sample.toml`` and one row in ``docs/configuration.md``; tests fail when either is
missing.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from inboxops.config.enrichment import SERVICE_TYPES, ServiceRule
from inboxops.config.hygiene import ExclusionSettings, ListmonkSettings
from inboxops.config.reputation import (
    DnsSettings,
    HealthSettings,
    OperatorSettings,
    ReputationSettings,
)
from inboxops.config.schema import MASK, Secret, apply_env, build, internal, setting
from inboxops.errors import ConfigError

__all__ = [
    "MASK",
    "SERVICE_TYPES",
    "AlertSettings",
    "DatabaseSettings",
    "DmarcSettings",
    "DnsSettings",
    "HealthSettings",
    "IPNetwork",
    "ImapSettings",
    "Limits",
    "NotifySettings",
    "OperatorSettings",
    "ReputationSettings",
    "Secret",
    "ServiceRule",
    "Settings",
    "TelegramSettings",
    "default_data_dir",
    "default_db_url",
    "load_settings",
    "parse_network",
    "parse_networks",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

TELEGRAM_PUBLIC_API = "https://api.telegram.org"
SECURITY_MODES = ("ssl", "starttls", "none")
MiB = 1024 * 1024


def parse_network(text: str) -> IPNetwork:
    """An IP or CIDR (``192.0.2.10``, ``198.51.100.0/24``, ``2001:db8::/32``)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError("IP addresses or CIDRs, e.g. 192.0.2.10 or 198.51.100.0/24") from None


def parse_networks(values: list[str] | tuple[str, ...], *, origin: str) -> tuple[IPNetwork, ...]:
    """IPs/CIDRs given by code (the demo); config values go through the schema instead."""
    try:
        return tuple(parse_network(v) for v in values if v.strip())
    except ValueError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError("an http:// or https:// URL")
    return text


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = setting("", env="DB")  # empty: the embedded SQLite file under the data directory


@dataclass(frozen=True)
class ImapSettings:
    host: str = setting("", env="IMAP_HOST")
    port: int | None = setting(None, env="IMAP_PORT", minimum=1, maximum=65535)
    user: str = setting("", env="IMAP_USER")
    password: Secret = setting(factory=lambda: Secret(""), env="IMAP_PASSWORD")
    folder: str = setting("INBOX", env="IMAP_FOLDER")
    security: str = setting("ssl", env="IMAP_SECURITY", choices=SECURITY_MODES, lower=True)
    # security = "none" to a host that is not loopback sends the password in clear: refused
    # unless the operator says so here (and then warned about on every run).
    allow_plaintext: bool = setting(False, env="IMAP_ALLOW_PLAINTEXT")
    archive_folder: str = setting("", env="IMAP_ARCHIVE_FOLDER")
    timeout: float = setting(60.0, minimum=1)
    verify_tls: bool = setting(True)
    # auth = "xoauth2": an OAuth2 access token instead of the password (Microsoft 365 takes no
    # passwords over IMAP); see inboxops.dmarc.oauth for the two flows and their settings.
    auth: str = setting("password", env="IMAP_AUTH", choices=("password", "xoauth2"), lower=True)
    oauth_provider: str = setting(
        "", env="IMAP_OAUTH_PROVIDER", choices=("microsoft", "google"), lower=True
    )
    oauth_tenant: str = setting("", env="IMAP_OAUTH_TENANT")  # Microsoft: tenant id or domain
    oauth_client_id: str = setting("", env="IMAP_OAUTH_CLIENT_ID")
    oauth_client_secret: Secret = setting(
        factory=lambda: Secret(""), env="IMAP_OAUTH_CLIENT_SECRET"
    )
    oauth_refresh_token: Secret = setting(  # Google
        factory=lambda: Secret(""), env="IMAP_OAUTH_REFRESH_TOKEN"
    )
    oauth_scope: str = setting("", env="IMAP_OAUTH_SCOPE")  # empty: the provider's IMAP scope
    oauth_authority: str = setting(
        "https://login.microsoftonline.com", env="IMAP_OAUTH_AUTHORITY", parse=_http_url
    )
    oauth_token_url: str = setting(
        "https://oauth2.googleapis.com/token", env="IMAP_OAUTH_TOKEN_URL", parse=_http_url
    )
    # PEM CA bundle trusted for the token endpoint instead of the system's (a TLS-inspecting
    # proxy, a test provider); empty: the usual public CAs
    oauth_ca_file: str = setting("", env="IMAP_OAUTH_CA_FILE")

    @property
    def effective_port(self) -> int:
        if self.port:
            return self.port
        return 993 if self.security == "ssl" else 143

    @property
    def loopback(self) -> bool:
        """The host is this machine (literal loopback address or ``localhost``)."""
        host = self.host.strip("[]").lower()
        if host in ("localhost", "localhost.", "ip6-localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True)
class AlertSettings:
    """Thresholds of the DMARC alert rules (see ``inboxops.dmarc.rules``)."""

    min_pass_rate: float = setting(0.95, minimum=0.0, maximum=1.0)
    spoof_min_failed: int = setting(20, minimum=1)
    window_days: int = setting(7, minimum=1, maximum=3660)
    repeat_hours: int = setting(24, minimum=0)  # an unchanged alert is sent again after this
    # failing IPs classified "forwarded": a separate, quieter digest (default), loud alerts like
    # spoofing, or not sent at all (still shown by `dmarc summary` and `dmarc alert --json`)
    forwarding: str = setting("digest", choices=("digest", "alert", "off"), lower=True)
    digest_hours: int = setting(168, minimum=0)  # the forwarding digest repeats after this


@dataclass(frozen=True)
class Limits:
    """Caps that keep hostile or broken input from exhausting memory or disk."""

    max_input_bytes: int = setting(64 * MiB, minimum=1)  # a file or mail as received
    max_decompressed_bytes: int = setting(512 * MiB, minimum=1)  # one payload after gzip/zip
    max_ratio: int = setting(200, minimum=1)  # decompressed/compressed past ratio_grace_bytes
    ratio_grace_bytes: int = setting(4 * MiB, minimum=0)
    max_zip_members: int = setting(16, minimum=1)
    max_nesting: int = setting(3, minimum=1)  # gzip in gzip in zip...
    max_records: int = setting(5_000_000, minimum=1)


@dataclass(frozen=True)
class DmarcSettings:
    own_ips: tuple[IPNetwork, ...] = setting(
        (), env="OWN_IPS", parse=parse_network, expect='a list of IPs/CIDRs, e.g. ["192.0.2.10"]'
    )
    domains: tuple[str, ...] = setting((), lower=True)  # our domains; empty = every domain
    retention_days: int = setting(0, minimum=0)  # `dmarc prune` default age; 0 = keep forever
    geoip_db: str = setting("", env="GEOIP_DB")  # a MaxMind-format .mmdb; empty = no country
    services: tuple[ServiceRule, ...] = setting(())  # [[dmarc.services]]: extends the built-in map
    imap: ImapSettings = setting(factory=ImapSettings)
    alerts: AlertSettings = setting(factory=AlertSettings)
    limits: Limits = setting(factory=Limits)

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", tuple(d.strip(".") for d in self.domains))


@dataclass(frozen=True)
class TelegramSettings:
    bot_token: Secret = setting(factory=lambda: Secret(""), env="TELEGRAM_BOT_TOKEN")
    chat_id: str = setting("", env="TELEGRAM_CHAT_ID")
    api_url: str = setting(TELEGRAM_PUBLIC_API, env="TELEGRAM_API_URL", parse=_http_url)
    timeout: float = setting(10.0, minimum=1)

    @property
    def configured(self) -> bool:
        return bool(self.bot_token) and bool(self.chat_id)


@dataclass(frozen=True)
class NotifySettings:
    urls: tuple[Secret, ...] = setting((), env="NOTIFY_URLS")  # apprise URLs carry credentials


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = setting(factory=DatabaseSettings)
    dmarc: DmarcSettings = setting(factory=DmarcSettings)
    telegram: TelegramSettings = setting(factory=TelegramSettings)
    notify: NotifySettings = setting(factory=NotifySettings)
    dns: DnsSettings = setting(factory=DnsSettings)
    operators: OperatorSettings = setting(factory=OperatorSettings)
    reputation: ReputationSettings = setting(factory=ReputationSettings)
    health: HealthSettings = setting(factory=HealthSettings)
    exclusions: ExclusionSettings = setting(factory=ExclusionSettings)
    listmonk: ListmonkSettings = setting(factory=ListmonkSettings)
    config_path: Path | None = internal()

    def with_db(self, url: str | None) -> Settings:
        """The settings with ``--db`` applied (a flag beats file and environment)."""
        if url is None:
            return self
        return replace(self, database=replace(self.database, url=url))


def default_data_dir() -> Path:
    """Where the embedded database lives: ``$XDG_DATA_HOME/inboxops`` (~/.local/share/inboxops)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "inboxops"


def default_db_url() -> str:
    return f"sqlite:///{default_data_dir() / 'inboxops.db'}"


def load_settings(
    config_path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Read the TOML file (``--config`` or ``INBOXOPS_CONFIG``), then apply the environment."""
    env = os.environ if env is None else env
    raw_path = config_path or env.get("INBOXOPS_CONFIG") or None
    settings = Settings()
    if raw_path:
        path = Path(raw_path).expanduser()
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"config file {path} does not exist; create one with `inboxops init {path}`"
            ) from None
        except IsADirectoryError:
            raise ConfigError(f"config file {path} is a directory; give the TOML file") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        loaded: Settings = build(Settings, doc, section="", file=path)
        settings = replace(loaded, config_path=path)
    updated: Settings = apply_env(settings, env)
    return updated
