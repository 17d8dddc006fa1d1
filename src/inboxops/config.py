"""Settings: defaults < TOML file < ``INBOXOPS_*`` environment < command-line flags.

Loaded and validated once at start (:func:`load_settings`); every other module receives plain,
typed values. Secrets are wrapped in :class:`Secret`, whose ``repr``/``str`` are masked, so a
stray log line or exception cannot leak them. Each secret may also be read from a ``*_file``
path (Docker/systemd credentials).

The environment names are a public contract (cron, systemd units and containers rely on them):
``INBOXOPS_DB``, ``INBOXOPS_IMAP_HOST``, ``INBOXOPS_IMAP_PORT``, ``INBOXOPS_IMAP_USER``,
``INBOXOPS_IMAP_PASSWORD``, ``INBOXOPS_IMAP_FOLDER``, ``INBOXOPS_IMAP_SECURITY``,
``INBOXOPS_OWN_IPS``, ``INBOXOPS_TELEGRAM_BOT_TOKEN``, ``INBOXOPS_TELEGRAM_CHAT_ID``,
``INBOXOPS_TELEGRAM_API_URL``, ``INBOXOPS_NOTIFY_URLS``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inboxops.errors import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

TELEGRAM_PUBLIC_API = "https://api.telegram.org"
SECURITY_MODES = ("ssl", "starttls", "none")
MiB = 1024 * 1024


class Secret:
    """A string that never prints itself; call :meth:`reveal` at the one place it is used."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ImapSettings:
    host: str = ""
    port: int | None = None  # None: 993 for ssl, 143 otherwise
    user: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    folder: str = "INBOX"
    security: str = "ssl"
    archive_folder: str = ""
    timeout: float = 60.0
    verify_tls: bool = True

    @property
    def effective_port(self) -> int:
        if self.port:
            return self.port
        return 993 if self.security == "ssl" else 143


@dataclass(frozen=True)
class TelegramSettings:
    bot_token: Secret = field(default_factory=lambda: Secret(""))
    chat_id: str = ""
    api_url: str = TELEGRAM_PUBLIC_API
    timeout: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.bot_token) and bool(self.chat_id)


@dataclass(frozen=True)
class AlertSettings:
    """Thresholds of the DMARC alert rules (see ``inboxops.dmarc.rules``)."""

    min_pass_rate: float = 0.95
    spoof_min_failed: int = 20
    window_days: int = 7
    repeat_hours: int = 24  # an unchanged alert is sent again after this long


@dataclass(frozen=True)
class Limits:
    """Caps that keep hostile or broken input from exhausting memory or disk."""

    max_input_bytes: int = 64 * MiB  # a file or mail as received
    max_decompressed_bytes: int = 512 * MiB  # one payload after gzip/zip
    max_ratio: int = 200  # decompressed/compressed, checked past ``ratio_grace_bytes``
    ratio_grace_bytes: int = 4 * MiB
    max_zip_members: int = 16
    max_nesting: int = 3  # gzip in gzip in zip...
    max_records: int = 5_000_000


@dataclass(frozen=True)
class Settings:
    db_url: str = ""  # empty: the embedded SQLite file under the data directory
    own_ips: tuple[IPNetwork, ...] = ()
    domains: tuple[str, ...] = ()  # our domains; empty = every domain the reports name
    imap: ImapSettings = field(default_factory=ImapSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    notify_urls: tuple[Secret, ...] = ()
    alerts: AlertSettings = field(default_factory=AlertSettings)
    limits: Limits = field(default_factory=Limits)
    config_path: Path | None = None

    def with_db(self, url: str | None) -> Settings:
        return replace(self, db_url=url) if url else self


def default_data_dir() -> Path:
    """Where the embedded database lives: ``$XDG_DATA_HOME/inboxops`` (~/.local/share/inboxops)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "inboxops"


def default_db_url() -> str:
    return f"sqlite:///{default_data_dir() / 'inboxops.db'}"


def parse_networks(values: list[str] | str, *, origin: str) -> tuple[IPNetwork, ...]:
    """Parse IPs and CIDRs (``192.0.2.10``, ``198.51.100.0/24``, ``2001:db8::/32``)."""
    items = values.split(",") if isinstance(values, str) else values
    nets: list[IPNetwork] = []
    for raw in items:
        text = str(raw).strip()
        if not text:
            continue
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(
                f"{origin}: {text!r} is not an IP address or CIDR; "
                "use e.g. 192.0.2.10 or 198.51.100.0/24"
            ) from None
    return tuple(nets)


def _read_secret(table: Mapping[str, Any], key: str, origin: str) -> str | None:
    """A secret from ``key`` or from the file named by ``key_file``."""
    if key in table:
        return str(table[key])
    file_key = f"{key}_file"
    if file_key in table:
        path = Path(str(table[file_key])).expanduser()
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{origin}.{file_key}: cannot read {path} ({exc.strerror})") from None
    return None


def _table(doc: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    node: Any = doc
    for part in path:
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    if not isinstance(node, Mapping):
        raise ConfigError(f"[{'.'.join(path)}] must be a table in the config file")
    return node


def _num(value: Any, kind: type, origin: str) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: expected a {kind.__name__}, got {value!r}") from None


def _from_file(doc: Mapping[str, Any], path: Path) -> Settings:
    str(path)
    db = _table(doc, "database")
    dmarc = _table(doc, "dmarc")
    imap_t = _table(doc, "dmarc", "imap")
    alerts_t = _table(doc, "dmarc", "alerts")
    limits_t = _table(doc, "dmarc", "limits")
    tg = _table(doc, "telegram")
    notify = _table(doc, "notify")

    imap = ImapSettings()
    imap = replace(
        imap,
        host=str(imap_t.get("host", imap.host)),
        port=_num(imap_t["port"], int, "[dmarc.imap].port") if "port" in imap_t else None,
        user=str(imap_t.get("user", imap.user)),
        password=Secret(_read_secret(imap_t, "password", "[dmarc.imap]") or ""),
        folder=str(imap_t.get("folder", imap.folder)),
        security=str(imap_t.get("security", imap.security)).lower(),
        archive_folder=str(imap_t.get("archive_folder", "")),
        timeout=_num(imap_t.get("timeout", imap.timeout), float, "[dmarc.imap].timeout"),
        verify_tls=bool(imap_t.get("verify_tls", True)),
    )
    telegram = TelegramSettings(
        bot_token=Secret(_read_secret(tg, "bot_token", "[telegram]") or ""),
        chat_id=str(tg.get("chat_id", "")),
        api_url=str(tg.get("api_url", TELEGRAM_PUBLIC_API)),
        timeout=_num(tg.get("timeout", 10.0), float, "[telegram].timeout"),
    )
    defaults_a = AlertSettings()
    alerts = AlertSettings(
        min_pass_rate=_num(
            alerts_t.get("min_pass_rate", defaults_a.min_pass_rate), float, "min_pass_rate"
        ),
        spoof_min_failed=_num(
            alerts_t.get("spoof_min_failed", defaults_a.spoof_min_failed), int, "spoof_min_failed"
        ),
        window_days=_num(alerts_t.get("window_days", defaults_a.window_days), int, "window_days"),
        repeat_hours=_num(
            alerts_t.get("repeat_hours", defaults_a.repeat_hours), int, "repeat_hours"
        ),
    )
    limits = Limits()
    known = {f for f in Limits.__dataclass_fields__}
    for key, value in limits_t.items():
        if key not in known:
            raise ConfigError(f"[dmarc.limits].{key} is not a known limit; known: {sorted(known)}")
        limits = replace(limits, **{key: _num(value, int, f"[dmarc.limits].{key}")})
    urls = notify.get("urls", [])
    if not isinstance(urls, list):
        raise ConfigError("[notify].urls must be a list of apprise URLs")
    return Settings(
        db_url=str(db.get("url", "")),
        own_ips=parse_networks(list(dmarc.get("own_ips", [])), origin="[dmarc].own_ips"),
        domains=tuple(str(d).lower().strip(".") for d in dmarc.get("domains", [])),
        imap=imap,
        telegram=telegram,
        notify_urls=tuple(Secret(str(u)) for u in urls),
        alerts=alerts,
        limits=limits,
        config_path=path,
    )


def _apply_env(s: Settings, env: Mapping[str, str]) -> Settings:
    def get(name: str) -> str | None:
        value = env.get(f"INBOXOPS_{name}")
        return value if value not in (None, "") else None

    imap = s.imap
    if (v := get("IMAP_HOST")) is not None:
        imap = replace(imap, host=v)
    if (v := get("IMAP_PORT")) is not None:
        imap = replace(imap, port=_num(v, int, "INBOXOPS_IMAP_PORT"))
    if (v := get("IMAP_USER")) is not None:
        imap = replace(imap, user=v)
    if (v := get("IMAP_PASSWORD")) is not None:
        imap = replace(imap, password=Secret(v))
    if (v := get("IMAP_FOLDER")) is not None:
        imap = replace(imap, folder=v)
    if (v := get("IMAP_SECURITY")) is not None:
        imap = replace(imap, security=v.lower())
    if (v := get("IMAP_ARCHIVE_FOLDER")) is not None:
        imap = replace(imap, archive_folder=v)
    tg = s.telegram
    if (v := get("TELEGRAM_BOT_TOKEN")) is not None:
        tg = replace(tg, bot_token=Secret(v))
    if (v := get("TELEGRAM_CHAT_ID")) is not None:
        tg = replace(tg, chat_id=v)
    if (v := get("TELEGRAM_API_URL")) is not None:
        tg = replace(tg, api_url=v)
    out = replace(s, imap=imap, telegram=tg)
    if (v := get("DB")) is not None:
        out = replace(out, db_url=v)
    if (v := get("OWN_IPS")) is not None:
        out = replace(out, own_ips=parse_networks(v, origin="INBOXOPS_OWN_IPS"))
    if (v := get("NOTIFY_URLS")) is not None:
        urls = [u.strip() for u in v.replace("\n", ",").split(",") if u.strip()]
        out = replace(out, notify_urls=tuple(Secret(u) for u in urls))
    return out


def _validate(s: Settings) -> Settings:
    if s.imap.security not in SECURITY_MODES:
        raise ConfigError(
            f"IMAP security {s.imap.security!r} is not one of ssl, starttls, none; "
            "set INBOXOPS_IMAP_SECURITY or [dmarc.imap].security"
        )
    if not 0.0 <= s.alerts.min_pass_rate <= 1.0:
        raise ConfigError("[dmarc.alerts].min_pass_rate must be between 0 and 1, e.g. 0.95")
    if s.alerts.spoof_min_failed < 1:
        raise ConfigError("[dmarc.alerts].spoof_min_failed must be 1 or more, e.g. 20")
    if s.alerts.repeat_hours < 0:
        raise ConfigError("[dmarc.alerts].repeat_hours must be 0 (always repeat) or more")
    if s.alerts.window_days < 1:
        raise ConfigError("[dmarc.alerts].window_days must be 1 or more")
    if not s.telegram.api_url.startswith(("http://", "https://")):
        raise ConfigError("INBOXOPS_TELEGRAM_API_URL must start with http:// or https://")
    return s


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
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        settings = _from_file(doc, path)
    return _validate(_apply_env(settings, env))
