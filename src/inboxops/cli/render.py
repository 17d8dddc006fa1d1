"""Tables for people: never cut an address, a domain or a number; never print raw input.

Rich fits a table to the terminal by shrinking columns, and when stdout is not a terminal
(cron mail, a pipe) it assumes 80 columns: an IPv6 address became ``2001:db8:123…``. Columns
here say what they hold:

* ``key``: IP addresses, domains, ids, dates. Never wrapped, never cut.
* ``number``: right-aligned, never wrapped or cut.
* ``text``: prose (reporters, reasons, reply texts), which may wrap.

When the unbreakable columns need more than the console's width, the table is printed wider
than the console rather than cut: a mail reader scrolls, a truncated IP is useless. Every cell
is plain text (no rich markup is interpreted) with control characters made visible
(:mod:`inboxops.untrusted`), because reporter names and reply texts come from strangers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from inboxops.untrusted import printable

Kind = Literal["key", "number", "text"]
_TEXT_MIN = 12  # narrowest a wrapping column may become


@dataclass(frozen=True)
class Col:
    header: str
    kind: Kind = "text"


Cell = str | Text


def styled(value: str, style: str) -> Text:
    """A cell with a colour (the value itself is still shown verbatim)."""
    return Text(printable(value), style=style)


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(printable(cell))


def build_table(
    title: str | None, cols: Sequence[Col], rows: Sequence[Sequence[Cell]]
) -> tuple[Table, int]:
    """The table, and the narrowest width at which nothing unbreakable is cut."""
    cells = [[_text(c) for c in row] for row in rows]
    table = Table(title=printable(title) if title else None, box=box.SIMPLE_HEAD)
    needed = 1 + 3 * len(cols)  # borders and padding of SIMPLE_HEAD (generous)
    for i, col in enumerate(cols):
        longest = max([len(r[i].plain) for r in cells] + [0])
        if col.kind == "text":
            width = min(max(longest, len(col.header)), _TEXT_MIN)
            table.add_column(col.header, overflow="fold", min_width=min(width, _TEXT_MIN))
        else:
            width = max(longest, len(col.header))
            table.add_column(
                col.header,
                justify="right" if col.kind == "number" else "left",
                no_wrap=True,
                overflow="ignore",
                min_width=width,
            )
        needed += width
    for row in cells:
        table.add_row(*row)
    return table, needed


def print_table(
    console: Console, title: str | None, cols: Sequence[Col], rows: Sequence[Sequence[Cell]]
) -> None:
    """Print ``rows``; wider than the console when the key and number columns need it."""
    table, needed = build_table(title, cols, rows)
    width = console.width
    if needed <= width:
        console.print(table)
        return
    # Console.print(width=...) is capped at the console's width, so widen the console itself
    # for this one table (a pipe or a mail reader takes long lines; a cut IP is useless).
    console.width = needed
    try:
        console.print(table, crop=False)
    finally:
        console.width = width


def say(console: Console, text: str, style: str | None = None) -> None:
    """One line of untrusted-safe output (no markup, no highlighting, no wrapping)."""
    console.print(
        Text(printable(text), style=style or ""), soft_wrap=True, highlight=False, markup=False
    )


def print_counts(console: Console, counts: dict[str, int], verb: str) -> None:
    """Rows per table a prune deleted (``verb``: "deleted" or "would delete"), when any."""
    if any(counts.values()):
        print_table(
            console,
            None,
            [Col("table", "key"), Col(verb, "number")],
            [(name, str(n)) for name, n in counts.items()],
        )
