"""Telling a terminal how far a long scrub or prune has got (the CLI passes a callback).

Reading a large listmonk instance page by page takes a while and its total is not known up
front, so progress is a short line of text ("main: 45,000 subscribers read"), not a bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Note = Callable[[str], None]
T = TypeVar("T")

EVERY = 1_000  # subscribers between two notes: a page of listmonk's API


def counted(items: Iterable[T], note: Note | None, what: str, every: int = EVERY) -> Iterator[T]:
    """``items`` unchanged, with a note every ``every`` items and one at the end."""
    if note is None:
        yield from items
        return
    n = 0
    for n, item in enumerate(items, 1):
        if n % every == 0:
            note(f"{n:,} {what}")
        yield item
    note(f"{n:,} {what}")
