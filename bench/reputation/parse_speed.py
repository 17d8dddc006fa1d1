"""Parse + classify speed of the Postfix log parser on the demo generator's fleet log.

    .venv/bin/python bench/reputation/parse_speed.py [--lines 1000000] [--style traditional]

Generates the log once into a temp dir, then times: a bare ``for line in fh`` loop (the floor),
the same loop with one regex search per line (a yardstick for how fast this machine is right
now), the parser over the file, and the parser over lines already in memory. Prints lines per
second for each. CPU time of this process, best of ``--repeat``: other work on the machine and
timing noise only ever add.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections import deque
from datetime import UTC, date, datetime
from pathlib import Path

from inboxops.demo.maillog import write_maillog
from inboxops.reputation import reasons
from inboxops.reputation.parse import PostfixLogParser


def best(repeat: int, run: object) -> float:
    assert callable(run)
    times = []
    for _ in range(repeat):
        reasons._classify_normalised.cache_clear()  # every run starts cold
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--style", default="traditional")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "maillog"
        t = time.perf_counter()
        summary = write_maillog(
            path, lines=args.lines, start=date(2026, 11, 1), days=14, style=args.style
        )
        print(f"generated {summary.lines:,} lines in {time.perf_counter() - t:.2f}s")
        ref = datetime(2026, 11, 20, tzinfo=UTC)

        def bare() -> None:
            with path.open(encoding="utf-8", errors="replace") as fh:
                for _line in fh:
                    pass

        yardstick = re.compile(r"status=([a-z]+) \(")

        def one_regex() -> None:
            with path.open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    yardstick.search(line)

        def from_file() -> None:
            parser = PostfixLogParser(ref=ref)
            with path.open(encoding="utf-8", errors="replace") as fh:
                deque(parser.parse(fh), maxlen=0)
            assert parser.malformed == summary.malformed, parser.stats

        with path.open(encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()

        def in_memory() -> None:
            deque(PostfixLogParser(ref=ref).parse(lines), maxlen=0)

        n = summary.lines
        for name, run in (
            ("read only", bare),
            ("one regex", one_regex),
            ("parse file", from_file),
            ("parse list", in_memory),
        ):
            seconds = best(args.repeat, run)
            print(f"{name:>11}: {seconds:6.2f}s  {n / seconds:>12,.0f} lines/s")


if __name__ == "__main__":
    main()
