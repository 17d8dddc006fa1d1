"""``inboxops db``: explicit schema migration for operators who prefer it to auto-upgrade."""

from __future__ import annotations

import click

from inboxops.cli.context import AppContext
from inboxops.storage.db import HEAD, current_revision, make_engine, safe_url, upgrade

pass_app = click.make_pass_decorator(AppContext)


@click.group()
def db() -> None:
    """Database schema. (Every command also creates or upgrades the schema on first use.)"""


@db.command("upgrade")
@pass_app
def upgrade_cmd(app: AppContext) -> None:
    """Create the schema or bring it to the newest revision."""
    engine = make_engine(app.effective_db_url)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    where = safe_url(app.effective_db_url)
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: upgraded from {before or 'empty'} to {after}")


@db.command("status")
@pass_app
def status(app: AppContext) -> None:
    """Show the schema revision of the database and the newest one this version knows."""
    engine = make_engine(app.effective_db_url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    state = "up to date" if current == HEAD else "needs `inboxops db upgrade`"
    click.echo(
        f"{safe_url(app.effective_db_url)}: revision {current or 'none'} (newest {HEAD}), {state}"
    )
