"""The ``inboxops`` command: a root group, one sub-group per capability.

Commands are thin: load :class:`~inboxops.config.Settings` once (through :class:`AppContext`),
call one function, render. Every :class:`~inboxops.errors.InboxopsError` is caught here, once,
and printed as a single ``Error: ...`` line with its exit code (0 ok, 1 failure, 2 usage or
config, 3 checked and found problems); with ``--json`` the failure is also a JSON object on
stdout, so a script reading stdout always gets JSON. Tracebacks only with ``-v``.

The global options (``--config``, ``--db``, ``-v``) may be written anywhere on the command line
(``inboxops dmarc summary --db URL``): :meth:`_Root.parse_args` moves them in front before click
parses, so every present and future sub-command accepts them.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from inboxops import __version__
from inboxops.cli.context import AppContext
from inboxops.errors import InboxopsError
from inboxops.logging import configure
from inboxops.untrusted import one_line

_VALUE_OPTIONS = ("--db", "--config")
_VERBOSE = re.compile(r"-v+|--verbose")


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with the global options moved in front of the first sub-command."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in _VALUE_OPTIONS:
            front.extend(args[i : i + 2])
            i += 2
            continue
        if arg.startswith(tuple(f"{o}=" for o in _VALUE_OPTIONS)) or _VERBOSE.fullmatch(arg):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


class _Root(click.Group):
    """Turns our exceptions into one line and an exit code, everywhere below the root."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["inboxops.json"] = "--json" in args
        return super().parse_args(ctx, hoist_global_options(args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InboxopsError as exc:
            app = ctx.find_object(AppContext)
            if app is not None and app.verbose > 0:
                import traceback

                traceback.print_exc()
            message = one_line(str(exc), limit=2000)
            if (app is not None and app.json_output) or ctx.meta.get("inboxops.json"):
                AppContext.print_json(
                    {"error": message, "exit_code": exc.exit_code, **exc.details()}
                )
            click.echo(f"Error: {message}", err=True)
            ctx.exit(exc.exit_code)
        except click.ClickException as exc:
            if ctx.meta.get("inboxops.json"):
                AppContext.print_json({"error": exc.format_message(), "exit_code": exc.exit_code})
            raise


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="inboxops")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="INBOXOPS_CONFIG",
    help="TOML config file (default: $INBOXOPS_CONFIG). Create one with `inboxops init`.",
)
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    help="Database: a SQLite file path, sqlite:///file.db or postgresql://user@host/db; "
    "overrides INBOXOPS_DB.",
)
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-vv for debug).")
@click.pass_context
def root(ctx: click.Context, config_path: str | None, db_url: str | None, verbose: int) -> None:
    """inboxops: the deliverability control plane for teams that send their own mail.

    \b
    Start here:
      inboxops init inboxops.toml      write a commented config file
      inboxops dmarc import DIR        ingest DMARC report files
      inboxops dmarc fetch --alert     read the rua mailbox, then alert on problems
      inboxops dmarc summary           per-IP DMARC pass rates

    Settings come from the config file, then INBOXOPS_* environment variables, then flags.
    The global options --config, --db and -v may also follow the sub-command.
    Exit codes: 0 ok, 1 failure, 2 usage or config error, 3 checked and found problems.
    """
    configure(verbose)
    if db_url is not None and not db_url.strip():
        raise click.BadParameter(
            "is empty; leave --db out for the default database, or give a file path, "
            "sqlite:///file.db or postgresql://user@host/db",
            param_hint="--db",
        )
    injected = ctx.obj if isinstance(ctx.obj, AppContext) else None  # tests inject a clock
    ctx.obj = AppContext(config_path=config_path, db_url=db_url, verbose=verbose)
    if injected is not None:
        ctx.obj.clock = injected.clock
    ctx.call_on_close(ctx.obj.close)


def _register() -> None:
    from inboxops.cli import (
        config_cmd,
        db_cmd,
        demo_cmd,
        dmarc_cmd,
        dmarc_maint,
        dmarc_views,
        health_cmd,
        mx_cmd,
        notify_cmd,
        reputation_cmd,
    )

    root.add_command(config_cmd.init)
    root.add_command(config_cmd.config)
    root.add_command(db_cmd.db)
    root.add_command(dmarc_cmd.dmarc)
    root.add_command(notify_cmd.notify)
    root.add_command(demo_cmd.demo)
    root.add_command(mx_cmd.mx)
    root.add_command(reputation_cmd.reputation)
    root.add_command(health_cmd.health)
    del dmarc_views, dmarc_maint  # register their commands on the dmarc group when imported


_register()


def main() -> None:
    """Console-script entry point."""
    sys.exit(root.main(prog_name="inboxops"))
