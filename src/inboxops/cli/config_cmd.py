"""``inboxops init`` and ``inboxops config show``: the config file and what is in effect."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import click

from inboxops.cli.context import AppContext
from inboxops.config import Settings
from inboxops.config.schema import describe
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
    """Settings as shown to people: every section and key, secrets masked, URLs without
    passwords. Derived from the schema, so a new setting shows up without code here."""
    view: dict[str, object] = {
        "config_file": str(settings.config_path) if settings.config_path else None,
        "database_in_use": safe_url(db_url),
    }
    view.update(describe(settings))
    database = view.get("database")
    if isinstance(database, dict) and database.get("url"):
        database["url"] = safe_url(str(database["url"]))
    return view


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def show(app: AppContext, as_json: bool) -> None:
    """Print the settings in effect (file < environment < flags), secrets masked."""
    view = settings_view(app.settings, app.effective_db_url)
    if as_json:
        app.print_json(view)
        return
    for key, value in _flatten(view):
        click.echo(f"{key} = {json.dumps(value, ensure_ascii=False)}")


def _flatten(view: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, value in view.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.extend(_flatten(value, path))
        else:
            out.append((path, value))
    return out
