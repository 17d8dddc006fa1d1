"""DMARC source enrichment: how long a 10,000-IP backfill takes, cold and from the cache.

One aggregate report with N distinct source IPs (default 10,000) is imported into a fresh
SQLite database; the test suite's DNS server on 127.0.0.1 answers a PTR for every IP and an A
record back (so each IP costs two lookups). Then ``inboxops dmarc summary --json`` runs as a
subprocess, interpreter start-up included:

* cold: every PTR and A looked up (concurrently, through the DNS cache) and stored;
* warm: the same command again, answered from the ``dns_cache`` table;
* with ``--latency MS`` every answer is held back that long, like a recursive resolver a few
  milliseconds away (the server answers concurrently, as a real one does).

    .venv/bin/python bench/dmarc/enrich.py [--ips 10000] [--latency 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # tests.servers.dns and tests.helpers

from tests.helpers import aggregate_xml  # noqa: E402
from tests.servers.dns import DnsServer  # noqa: E402


def _ips(n: int) -> list[str]:
    return [f"10.{i // 62500 + 1}.{i // 250 % 250}.{i % 250 + 1}" for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ips", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.0, help="ms added to every answer")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    server = DnsServer()
    ips = _ips(args.ips)
    for n, ip in enumerate(ips):
        name = f"o{n}.ptr{n % 97}.sendgrid.net"
        server.zone.set_ptr(ip, name)
        server.zone.set_a(name, [ip])
    if args.latency:
        server.zone.slow(args.latency / 1000)
    with tempfile.TemporaryDirectory(prefix="inboxops-enrich-") as tmp:
        report = Path(tmp) / "big.xml"
        report.write_bytes(aggregate_xml(report_id="big", rows=[(ip, 1, False) for ip in ips]))
        db = f"sqlite:///{Path(tmp) / 'bench.db'}"
        env = {**os.environ, "INBOXOPS_DNS_NAMESERVERS": server.nameserver}
        cli = [sys.executable, "-m", "inboxops", "--db", db]
        subprocess.run([*cli, "dmarc", "import", str(report)], env=env, check=True)
        window = ["--since", "2000-01-01", "--json"]
        timings = {}
        for run in ("cold", "warm"):
            before = server.query_count
            start = time.perf_counter()
            done = subprocess.run(
                [*cli, "dmarc", "summary", *window], env=env, check=True, capture_output=True
            )
            timings[run] = (time.perf_counter() - start, server.query_count - before)
        rows = json.loads(done.stdout)
        confirmed = sum(1 for r in rows if r["fcrdns"])
    server.stop()
    result = {
        "ips": args.ips,
        "latency_ms": args.latency,
        "cold_seconds": round(timings["cold"][0], 2),
        "cold_queries": timings["cold"][1],
        "warm_seconds": round(timings["warm"][0], 2),
        "warm_queries": timings["warm"][1],
        "confirmed": confirmed,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{args.ips} IPs, +{args.latency:g} ms per answer: cold {result['cold_seconds']} s "
        f"({result['cold_queries']} queries, {confirmed} forward-confirmed), warm "
        f"{result['warm_seconds']} s ({result['warm_queries']} queries)"
    )


if __name__ == "__main__":
    main()
