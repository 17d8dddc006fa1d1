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

import gc
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
    """Turns our exceptions into one line and an exit code, everywhere below the root.

    Its sub-commands are loaded on first use (:data:`LAZY_COMMANDS`): start-up stays cheap.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(LAZY_COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            self.add_command(load_command(cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the one-line helps, without importing any command."""
        limit = formatter.width - 6 - max(len(n) for n in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            # a stand-in with the same help shortens it exactly as the real command would
            command = self.commands.get(name) or click.Command(name, help=LAZY_COMMANDS[name][2])
            rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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


# name -> (module under inboxops.cli, attribute, the command's one-line help). Sub-commands are
# imported only when invoked, so `inboxops --help`, `--version` and shell completion never load
# SQLAlchemy, lxml or rich (tests/test_startup.py holds the one-line helps to the real ones).
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "config": ("config_cmd", "config", "Inspect the configuration in effect."),
    "db": ("db_cmd", "db", "Database schema."),
    "demo": (
        "demo_cmd",
        "demo",
        "Generate sample DMARC reports and a Postfix fleet log; ingest both; print what you'd see.",
    ),
    "dmarc": (
        "dmarc_cmd",
        "dmarc",
        "DMARC aggregate, failure and SMTP TLS reports: ingest, summarise, alert.",
    ),
    "exclusions": (
        "exclusions_cmd",
        "exclusions",
        "The exclusion list ([exclusions] rules and files) that `inboxops listmonk scrub` applies.",
    ),
    "health": (
        "health_cmd",
        "health",
        "The end-of-day health check of each sending pool: alerts only when something is wrong.",
    ),
    "init": (
        "config_cmd",
        "init",
        "Write a commented sample config file to PATH (default ./inboxops.toml).",
    ),
    "listmonk": (
        "listmonk_cmd",
        "listmonk",
        "List hygiene on listmonk: scrub excluded domains, prune warmup lists.",
    ),
    "mx": (
        "mx_cmd",
        "mx",
        "MX-based operator classification: classify domains, seed the cache, list moves.",
    ),
    "notify": (
        "notify_cmd",
        "notify",
        "Alert channels: Telegram (INBOXOPS_TELEGRAM_*) and apprise URLs (INBOXOPS_NOTIFY_URLS).",
    ),
    "reputation": (
        "reputation_cmd",
        "reputation",
        "Reputation from your own Postfix logs: every delivery attempt, per sending IP and "
        "receiving operator (Gmail, Microsoft, Yahoo, Apple, Comcast, ...).",
    ),
}
# Modules that add sub-commands to a group when imported (the dmarc group is split in four).
_EXTENDS = {"dmarc": ("dmarc_alert", "dmarc_views", "dmarc_maint")}


def load_command(name: str) -> click.Command:
    """Import the module of a top-level command (and the modules that extend it)."""
    from importlib import import_module

    module, attr, _ = LAZY_COMMANDS[name]
    command: click.Command = getattr(import_module(f"inboxops.cli.{module}"), attr)
    for extra in _EXTENDS.get(name, ()):
        import_module(f"inboxops.cli.{extra}")
    return command


def main() -> None:
    """Console-script entry point."""
    try:
        sys.exit(root.main(prog_name="inboxops"))
    finally:
        # The interpreter's teardown runs full cycle collections over every object the
        # command left alive (SQLAlchemy's and lxml's module state, a run's caches): 40 to
        # 70 ms, a tenth of a short import. Frozen objects are left out of them; teardown
        # itself (atexit, finalizers, closing files and connections) runs as ever.
        gc.freeze()
