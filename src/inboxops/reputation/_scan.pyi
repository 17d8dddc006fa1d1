"""Types of the C scanner (_scan.c): the Postfix log parser's hot loop."""

from collections.abc import Callable
from typing import Any

class Scanner:
    def __init__(
        self,
        *,
        names: dict[str, tuple[str, str, int]],
        learn: Callable[[str], tuple[str, str, int]],
        bad: Callable[[str], None],
        counts: list[int],
        minutes: dict[str, float],
        syslog: Callable[[str], float | None],
        iso: Callable[[str], float | None],
        relays: dict[str, Any],
        relay: Callable[[dict[str, Any], str], Any],
        classify: Callable[[str, str, str], str],
        accepted: str,
        bad_relay: Any,
    ) -> None: ...
    def scan(self, lines: list[str], start: int) -> tuple[list[tuple[Any, ...]], int]: ...
    def scan_text(self, text: str, pos: int) -> tuple[list[tuple[Any, ...]], int, str | None]: ...
    def forget(self) -> None: ...
