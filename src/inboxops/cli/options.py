"""Options commands share: the time window and the age of a prune, so all of them read alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from inboxops.cli.context import AppContext, json_option
from inboxops.window import MAX_DAYS, When, Window, WindowError, parse_when, window_from

F = TypeVar("F", bound=Callable[..., Any])


class WhenType(click.ParamType[When, str]):
    """A date or ISO 8601 date-time (offset optional; UTC when absent)."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> When:
        if isinstance(value, When):
            return value
        try:
            return parse_when(str(value))
        except WindowError as exc:
            self.fail(str(exc), param, ctx)


WHEN = WhenType()


class AgeType(click.ParamType[int, str]):
    """``400d`` or ``12w``: an age in days or weeks (see :func:`inboxops.retention.parse_age`)."""

    name = "AGE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        from inboxops.retention import parse_age

        try:
            return parse_age(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def window_options(func: Callable[..., None]) -> Callable[..., None]:
    """``--days N | --since D [--until D]`` (see :mod:`inboxops.window`)."""
    func = click.option(
        "--until",
        type=WHEN,
        help="End of the window (exclusive; a date includes that whole day; default now).",
    )(func)
    func = click.option(
        "--since",
        type=WHEN,
        help="Start of the window: a date (2024-03-06) or ISO 8601 date-time "
        "(2024-03-06T00:00:00Z); UTC unless an offset is given.",
    )(func)
    func = click.option(
        "--days",
        type=click.IntRange(min=1, max=MAX_DAYS),
        help="Window of the last N days.",
    )(func)
    return func


def resolve_window(
    app: AppContext,
    days: int | None,
    since: When | None,
    until: When | None,
    *,
    default_days: int,
) -> Window:
    """The window the flags describe; an impossible one is a usage error (exit 2)."""
    try:
        return window_from(app.clock(), days, since, until, default_days=default_days)
    except WindowError as exc:
        raise click.UsageError(str(exc)) from None


def prune_options(what: str, example: str, setting: str) -> Callable[[F], F]:
    """``--older-than AGE --dry-run --json``, as every prune reads them: ``what`` goes,
    ``example`` is an age (``400d``), ``setting`` the config default (``[dmarc]
    retention_days``)."""

    def add(func: F) -> F:
        func = json_option("Print the counts per table as one JSON object on stdout.")(func)
        func = click.option(
            "--dry-run", is_flag=True, help="Count what would be deleted; delete nothing."
        )(func)
        return click.option(
            "--older-than",
            type=AgeType(),
            help=f"Delete {what} older than this: {example} (days) or 12w (weeks). "
            f"Default: {setting}.",
        )(func)

    return add
