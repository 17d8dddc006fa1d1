"""Placeholder: `inboxops notify` lands here."""

from __future__ import annotations

import click


@click.group()
def notify() -> None:
    """Alert channels (Telegram, apprise URLs)."""
