"""A scrub of 100,000 listmonk subscribers (5% of them on excluded domains), end to end.

The listmonk double of the test suite (``tests/servers/listmonk.py``: real HTTP on 127.0.0.1,
real SQL in SQLite) is seeded in this process; ``inboxops listmonk scrub --json`` runs as its own
process against it, timed from spawn to exit (interpreter start-up included) with its peak RSS,
and the double counts every HTTP request it answered. Then the same scrub again, which must find
nothing left to do.

    .venv/bin/python bench/listmonk/run.py [--subscribers 100000] [--match 0.05]
                                           [--without-sql-query] [--json]

Targets (issue 8): at most 1 request per 1,000 subscribers scanned plus the blocklist batches,
and under 30 s of wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))
from tests.servers.listmonk import SQL_QUERY, ListmonkDouble  # noqa: E402

from common import measure  # noqa: E402  (bench/ is not a package)
from inboxops.listmonk import BATCH_SIZE  # noqa: E402

INBOXOPS = Path(sys.executable).parent / "inboxops"
EXCLUDED = ["icloud.com", "me.com", "mac.com"]
TARGET_SECONDS = 30.0


def seed(double: ListmonkDouble, n: int, share: float) -> int:
    """``n`` enabled subscribers on one list; every 1/share-th on an excluded domain."""
    step = round(1 / share)
    domains = [EXCLUDED[0], *(f"d{i}.example.net" for i in range(step - 1))]
    ids = double.seed(n, domains=domains, lists=[double.add_list("Newsletter")])
    return len(ids[::step])


def scrub(double: ListmonkDouble, config: Path, db: str) -> dict[str, Any]:
    before = sum(double.counts.values())
    blocklist_before = double.count("PUT /api/subscribers/blocklist")
    seconds, rss, code, out = measure(
        [str(INBOXOPS), "--config", str(config), "--db", db, "listmonk", "scrub", "--json"]
    )
    if code != 0:
        sys.exit(f"inboxops listmonk scrub exited {code}: {out.decode()[:500]}")
    report = json.loads(out)["instances"]["bench"]
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(rss, 1),
        "requests": sum(double.counts.values()) - before,
        "blocklist_requests": double.count("PUT /api/subscribers/blocklist") - blocklist_before,
        **{k: report[k] for k in ("scanned", "matched", "blocklisted")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--match", type=float, default=0.05, help="share on excluded domains")
    parser.add_argument(
        "--without-sql-query",
        action="store_true",
        help="an API user without subscribers:sql_query (v5+): offset windows, status client-side",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    double = ListmonkDouble("bench", version="v6.2.0")
    double.start()
    try:
        if args.without_sql_query:
            double.revoke(SQL_QUERY)
        expected = seed(double, args.subscribers, args.match)
        with tempfile.TemporaryDirectory() as tmp:
            inst = double.instance()
            config = Path(tmp) / "inboxops.toml"
            config.write_text(
                f"[exclusions]\nrules = {json.dumps(EXCLUDED)}\n"
                f'[[listmonk.instances]]\nname = "bench"\nurl = "{inst.url}"\n'
                f'user = "{inst.user}"\ntoken = "{inst.token.reveal()}"\n'
            )
            db = f"sqlite:///{Path(tmp) / 'inboxops.db'}"
            first = scrub(double, config, db)
            again = scrub(double, config, db)
    finally:
        double.close()

    batches = math.ceil(expected / BATCH_SIZE)
    allowed = math.ceil(first["scanned"] / 1000) + batches
    result = {
        "subscribers": args.subscribers,
        "matching": expected,
        "sql_query": not args.without_sql_query,
        "scrub": first,
        "rerun": again,
        "targets": {
            "requests_allowed": allowed,
            "requests_met": first["requests"] <= allowed,
            "seconds_allowed": TARGET_SECONDS,
            "seconds_met": first["seconds"] < TARGET_SECONDS,
        },
    }
    ok = first["blocklisted"] == expected and again["blocklisted"] == 0
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        mode = "by id (sql_query)" if result["sql_query"] else "offset windows (no sql_query)"
        print(f"listmonk scrub: {args.subscribers:,} subscribers, {expected:,} matching, {mode}")
        for name, run in (("scrub", first), ("rerun", again)):
            print(
                f"  {name:5}  {run['seconds']:6.2f} s  {run['requests']:4d} HTTP requests "
                f"({run['blocklist_requests']} blocklist)  scanned {run['scanned']:,}  "
                f"blocklisted {run['blocklisted']:,}  peak RSS {run['peak_rss_mib']} MiB"
            )
        t = result["targets"]
        print(
            f"  targets: requests {first['requests']} <= {allowed} "
            f"({'met' if t['requests_met'] else 'NOT met'}), wall {first['seconds']} s < "
            f"{TARGET_SECONDS:g} s ({'met' if t['seconds_met'] else 'NOT met'})"
        )
    if not ok:
        sys.exit("the scrub did not blocklist exactly the matching subscribers once")


if __name__ == "__main__":
    main()
