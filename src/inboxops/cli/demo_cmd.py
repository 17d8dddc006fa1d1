"""Placeholder: `inboxops demo` lands here."""

from __future__ import annotations

import click


@click.command()
def demo() -> None:
    """Generate sample reports, ingest them and show the summary and alerts."""
