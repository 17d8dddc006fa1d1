"""``inboxops db``: explicit schema migration for operators who prefer it to auto-upgrade."""

from __future__ import annotations

import click

from inboxops.cli.context import AppContext, json_option, pass_app


@click.group()
def db() -> None:
    """Database schema. (Every command also creates or upgrades the schema on first use.)"""


@db.command("upgrade")
@json_option()
@pass_app
def upgrade_cmd(app: AppContext, as_json: bool) -> None:
    """Create the schema or bring it to the newest revision."""
    from inboxops.storage.db import make_engine, safe_url, upgrade

    engine = make_engine(app.effective_db_url, create_parent=app.uses_default_db)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    where = safe_url(app.effective_db_url)
    if as_json:
        app.print_json({"database": where, "before": before, "after": after})
    elif before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: upgraded from {before or 'empty'} to {after}")


@db.command("status")
@json_option()
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Show the schema revision of the database and the newest one this version knows.

    Read-only: a database that does not exist yet is reported, never created.
    """
    from inboxops.storage.db import HEAD, current_revision, make_engine, safe_url
    from inboxops.storage.url import parse_database_url

    where = safe_url(app.effective_db_url)
    target = parse_database_url(app.effective_db_url)
    if target.sqlite_path is not None and not target.sqlite_path.exists():
        current = None
        state = "no database yet (the first import or fetch creates it)"
    else:
        engine = make_engine(target)
        try:
            current = current_revision(engine)
        finally:
            engine.dispose()
        state = "up to date" if current == HEAD else "needs `inboxops db upgrade`"
    if as_json:
        app.print_json(
            {"database": where, "revision": current, "newest": HEAD, "up_to_date": current == HEAD}
        )
    else:
        click.echo(f"{where}: revision {current or 'none'} (newest {HEAD}), {state}")
