"""What every benchmark shares: one way to time a whole process and read its peak memory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, bytes]:
    """(wall seconds, peak RSS MiB, exit code, stdout) of one child process.

    Peak RSS comes from GNU time, which forks from its own small image: a child forked
    straight from this (possibly large) Python process would report the parent's pages as
    its own peak.
    """
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
