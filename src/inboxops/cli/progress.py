"""Progress on long work, on a terminal only: quiet under cron, in pipes and in tests.

``progress_bar`` is for work whose size is known as it goes (files, reports, bytes);
``activity`` for work counted without a total (subscribers read page by page from an API).
Both yield ``None`` when there is no terminal, so callers pass the callback straight through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from inboxops.cli.context import AppContext


@contextmanager
def progress_bar(app: AppContext, label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal; nothing under cron or in a pipe."""
    if not app.interactive():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=app.err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@contextmanager
def activity(app: AppContext, label: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner with a line saying what is being done (``note("main: 45,000 read")``)."""
    if not app.interactive():
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=app.err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def note(text: str) -> None:
            bar.update(task, description=f"{label}: {text}")

        yield note
