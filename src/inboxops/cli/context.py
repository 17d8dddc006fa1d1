"""What every command receives: settings loaded once, an injectable clock, output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy import Engine

    from inboxops.config import Settings


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppContext:
    config_path: str | None = None
    db_url: str | None = None
    verbose: int = 0
    clock: Callable[[], datetime] = _utcnow  # tests inject a fixed clock
    json_output: bool = False  # set by --json: failures are then JSON on stdout too
    _settings: Settings | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from inboxops.config import load_settings

            self._settings = load_settings(self.config_path).with_db(self.db_url)
        return self._settings

    @property
    def effective_db_url(self) -> str:
        from inboxops.config import default_db_url

        return self.settings.database.url or default_db_url()

    @property
    def uses_default_db(self) -> bool:
        return not self.settings.database.url

    def engine(self, *, readonly: bool = False) -> Engine:
        """The database, created or upgraded on first use.

        ``readonly`` commands (summaries, views, ``db status``) never create a database: a
        missing one is a clear :class:`~inboxops.storage.db.NoDatabase` error instead of an
        empty file left behind.
        """
        if self._engine is None:
            from inboxops.storage.db import open_database

            self._engine = open_database(
                self.effective_db_url, create=not readonly, create_parent=self.uses_default_db
            )
        return self._engine

    def close(self) -> None:
        """Release pooled connections when the command ends (PostgreSQL would warn otherwise)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def console(self) -> Console:
        from rich.console import Console

        return Console(stderr=False, soft_wrap=False)

    @property
    def err_console(self) -> Console:
        from rich.console import Console

        return Console(stderr=True)

    @staticmethod
    def interactive() -> bool:
        """Progress bars only on a terminal: quiet under cron and in pipes."""
        return sys.stderr.isatty()

    @staticmethod
    def print_json(payload: Any) -> None:
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def _json_flag(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        app = ctx.find_object(AppContext)
        if app is not None:
            app.json_output = True
    return value


F = TypeVar("F", bound=Callable[..., Any])


def json_option(
    help_text: str = "Print the result as JSON on stdout (errors too).",
) -> Callable[[F], F]:
    """``--json`` for a report command: results on stdout; a failure is a JSON object too."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        is_eager=True,
        callback=_json_flag,
        help=help_text,
    )


pass_app = click.make_pass_decorator(AppContext)
