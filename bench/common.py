"""What every benchmark shares: one way to time a whole process and read its peak memory."""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

SOURCES = Path(__file__).resolve().parents[1] / "src"
_compiled = False


def compile_sources() -> None:
    """Byte-compile inboxops' sources once, as ``pip install`` does for an installed package.

    The tools compared against run from a virtualenv whose modules pip compiled at install.
    inboxops runs from this checkout, and where the shell or CI sets
    ``PYTHONDONTWRITEBYTECODE`` (this machine does) every start would compile all its modules
    again: about 0.1 s per process that no installed inboxops pays.
    """
    global _compiled
    if not _compiled:
        compileall.compile_dir(SOURCES, quiet=1)
        _compiled = True


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, bytes]:
    """(wall seconds, peak RSS MiB, exit code, stdout) of one child process.

    Peak RSS comes from GNU time, which forks from its own small image: a child forked
    straight from this (possibly large) Python process would report the parent's pages as
    its own peak.
    """
    compile_sources()
    gnu_time = shutil.which("time") or "/usr/bin/time"
    if not Path(gnu_time).exists():
        sys.exit("bench needs GNU time for peak RSS: apt-get install time")
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stamp:
        start = time.perf_counter()
        proc = subprocess.run(
            [gnu_time, "-f", "%M", "-o", stamp.name, *cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            check=False,
        )
        elapsed = time.perf_counter() - start
        lines = [line for line in Path(stamp.name).read_text().splitlines() if line.strip()]
    rss_kib = float(lines[-1]) if lines and lines[-1].strip().isdigit() else 0.0
    return elapsed, rss_kib / 1024, proc.returncode, proc.stdout


class Timed(Protocol):
    seconds: float
    note: str


T = TypeVar("T", bound=Timed)


def median(repeat: int, run: Callable[[], T]) -> T:
    """The run of median wall time out of ``repeat``: this machine's timing noise (up to a
    third between identical runs, twice that from hour to hour) moves one run's figure more
    than most changes do. Its note lists every run's seconds."""
    return median_of([run() for _ in range(max(repeat, 1))])


def median_of(runs: list[T]) -> T:
    """The run of median wall time out of runs already made (see :func:`median`)."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    chosen = ordered[len(ordered) // 2]
    if len(ordered) > 1:
        seconds = ", ".join(f"{r.seconds:.2f}" for r in ordered)
        chosen.note = f"median of {len(ordered)} ({seconds} s)"
    return chosen
