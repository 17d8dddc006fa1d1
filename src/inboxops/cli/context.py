"""What every command receives: settings loaded once, an injectable clock, output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from sqlalchemy import Engine

from inboxops.config import Settings, default_db_url, load_settings


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppContext:
    config_path: str | None = None
    db_url: str | None = None
    verbose: int = 0
    clock: Callable[[], datetime] = _utcnow  # tests inject a fixed clock
    _settings: Settings | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path).with_db(self.db_url)
        return self._settings

    @property
    def effective_db_url(self) -> str:
        return self.settings.db_url or default_db_url()

    def engine(self) -> Engine:
        """The database, created or upgraded on first use."""
        if self._engine is None:
            from inboxops.storage.db import open_database

            self._engine = open_database(self.effective_db_url)
        return self._engine

    def close(self) -> None:
        """Release pooled connections when the command ends (PostgreSQL would warn otherwise)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def console(self) -> Console:
        return Console(stderr=False, soft_wrap=False)

    @property
    def err_console(self) -> Console:
        return Console(stderr=True)

    @staticmethod
    def interactive() -> bool:
        """Progress bars only on a terminal: quiet under cron and in pipes."""
        return sys.stderr.isatty()

    @staticmethod
    def print_json(payload: Any) -> None:
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
