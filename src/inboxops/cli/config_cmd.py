"""``inboxops init`` and ``inboxops config show``: the config file and what is in effect."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from inboxops.cli.context import AppContext
from inboxops.config import Settings
from inboxops.errors import ConfigError
from inboxops.storage.db import safe_url

pass_app = click.make_pass_decorator(AppContext)


def sample_config() -> str:
    return resources.files("inboxops").joinpath("config_sample.toml").read_text(encoding="utf-8")


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), default="inboxops.toml")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path, force: bool) -> None:
    """Write a commented sample config file to PATH (default ./inboxops.toml)."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; use --force to overwrite it")
    path.write_text(sample_config(), encoding="utf-8")
    path.chmod(0o600)  # it may come to hold passwords
    click.echo(f"wrote {path}; edit it, then run: inboxops --config {path} config show")


@click.group()
def config() -> None:
    """Inspect the configuration in effect."""


def settings_view(settings: Settings, db_url: str) -> dict[str, object]:
    """Settings as shown to people: secrets masked, URLs without passwords."""
    mask = "********"
    return {
        "config_file": str(settings.config_path) if settings.config_path else None,
        "database": safe_url(db_url),
        "own_ips": [str(n) for n in settings.own_ips],
        "domains": list(settings.domains),
        "imap": {
            "host": settings.imap.host,
            "port": settings.imap.effective_port,
            "user": settings.imap.user,
            "password": mask if settings.imap.password else "",
            "folder": settings.imap.folder,
            "security": settings.imap.security,
            "archive_folder": settings.imap.archive_folder,
        },
        "alerts": {
            "min_pass_rate": settings.alerts.min_pass_rate,
            "spoof_min_failed": settings.alerts.spoof_min_failed,
            "window_days": settings.alerts.window_days,
        },
        "telegram": {
            "bot_token": mask if settings.telegram.bot_token else "",
            "chat_id": settings.telegram.chat_id,
            "api_url": settings.telegram.api_url,
        },
        "notify_urls": [mask for _ in settings.notify_urls],
    }


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def show(app: AppContext, as_json: bool) -> None:
    """Print the settings in effect (file < environment < flags), secrets masked."""
    view = settings_view(app.settings, app.effective_db_url)
    if as_json:
        app.print_json(view)
        return
    for key, value in view.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                click.echo(f"{key}.{sub} = {v}")
        else:
            click.echo(f"{key} = {value}")
