"""inboxops beside parsedmarc on the same DMARC inputs, in one run.

Inputs: the shared corpus, N generated small reports, one generated report with 20,000
records and one with 100,000. Each tool runs as its own subprocess (wall time from spawn to exit,
peak RSS from GNU time), so every tool pays its interpreter start-up and all are measured the
same way. The 100,000-record report is also read by lxml's bare ``iterparse`` (records counted
and cleared, nothing else: the floor any Python DMARC parser stands on) and inboxops is printed
as a fraction of that rate; inboxops also runs it into PostgreSQL.

    .venv/bin/python bench/dmarc/run.py [--small 2000] [--medium 20000] [--large 100000]
                                        [--repeat 3] [--json]

Each tool runs ``--repeat`` times on each input and the median run is shown with every run's
seconds; on the large report inboxops and the bare parse take turns (parsedmarc, when asked,
runs it once).

parsedmarc is installed from the package index into bench/.work/parsedmarc-venv on first use
and run with ``--offline`` (no DNS, no GeoIP downloads).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from common import measure, median, median_of  # noqa: E402  (bench/ is not a package)

WORK = REPO / "bench" / ".work"
SHARED = Path(os.environ.get("INBOXOPS_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "corpus" / "dmarc"
PARSEDMARC_VENV = WORK / "parsedmarc-venv"
INBOXOPS = Path(sys.executable).parent / "inboxops"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Run:
    input: str
    tool: str
    seconds: float
    items: int
    unit: str
    peak_rss_mib: float
    ok: bool
    note: str = ""

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


def ensure_parsedmarc() -> Path:
    exe = PARSEDMARC_VENV / "bin" / "parsedmarc"
    if not exe.exists():
        print("installing parsedmarc into", PARSEDMARC_VENV, file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PARSEDMARC_VENV)], check=True)
        pip = PARSEDMARC_VENV / "bin" / "pip"
        subprocess.run([str(pip), "install", "-q", "parsedmarc"], check=True)
    return exe


def parsedmarc_version(exe: Path) -> str:
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    return (
        (out.stdout or out.stderr).strip().splitlines()[-1] if (out.stdout or out.stderr) else "?"
    )


def make_inputs(small: int, medium: int, large: int) -> dict[str, Path]:
    from inboxops.demo.generate import generate_large_report, generate_reports

    inputs = {"corpus": CORPUS}
    small_dir = WORK / f"small-{small}"
    if not small_dir.exists():
        generate_reports(small_dir, count=small, seed=11, compress="mixed")
    inputs["small"] = small_dir
    for name, records in (("medium", medium), ("large", large)):
        path = WORK / f"large-{records}.xml"
        if not path.exists():
            generate_large_report(path, records=records, seed=11)
        inputs[name] = path
    return inputs


BARE_ITERPARSE = """
import sys
from lxml import etree
n = 0
for _, el in etree.iterparse(sys.argv[1], events=("end",), tag="{*}record", huge_tree=False):
    n += 1
    el.clear(keep_tail=False)
    while el.getprevious() is not None:
        del el.getparent()[0]
print(n)
"""


def run_bare_iterparse(name: str, path: Path) -> Run:
    """lxml's iterparse over the same file, records counted and freed: the parsing floor."""
    seconds, rss, code, out = measure([sys.executable, "-c", BARE_ITERPARSE, str(path)])
    items = int(out.strip() or 0) if code == 0 else 0
    return Run(name, "lxml iterparse (bare)", seconds, items, "records", rss, code == 0)


def run_inboxops(name: str, path: Path, db_url: str, *, per_record: bool) -> Run:
    cmd = [str(INBOXOPS), "--db", db_url, "dmarc", "import", "--json", str(path)]
    seconds, rss, code, out = measure(cmd)
    stats = json.loads(out) if out.strip() else {}
    reports = int(stats.get("reports_new", 0))
    records = int(stats.get("records", 0))
    items, unit = (records, "records") if per_record else (reports, "reports")
    backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    return Run(name, f"inboxops ({backend})", seconds, items, unit, rss, code in (0, 3))


def run_fresh(name: str, path: Path, *, per_record: bool) -> Run:
    """inboxops into a new SQLite database of its own."""
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        return run_inboxops(name, path, f"sqlite:///{tmp}/bench.db", per_record=per_record)


def run_parsedmarc(exe: Path, name: str, path: Path, *, per_record: bool) -> Run:
    out_dir = Path(tempfile.mkdtemp(prefix="parsedmarc-out-", dir=WORK))
    files = (
        [str(p) for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [str(path)]
    )
    cmd = [str(exe), "--offline", "-s", "-o", str(out_dir), *files]
    seconds, rss, code, _ = measure(cmd)
    items, unit = 0, "reports"
    aggregate = out_dir / "aggregate.json"
    if aggregate.exists():
        reports = json.loads(aggregate.read_text() or "[]")
        if per_record:
            items, unit = sum(len(r.get("records", [])) for r in reports), "records"
        else:
            items = len(reports)
    shutil.rmtree(out_dir, ignore_errors=True)
    return Run(name, "parsedmarc", seconds, items, unit, rss, code == 0)


def median_pairs(repeat: int, first: Callable[[], Run], second: Callable[[], Run]) -> list[Run]:
    """Two tools run in turns, ``repeat`` times each, and each one's median run: their ratio
    compares runs of the same minutes, which this machine's drifting speed would not give if
    one tool's runs all came before the other's."""
    a, b = [], []
    for _ in range(max(repeat, 1)):
        a.append(first())
        b.append(second())
    return [median_of(a), median_of(b)]


def pg_schema(action: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        if action == "create":
            conn.execute(f'CREATE SCHEMA "{schema}"')
        else:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--medium", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--only", default="corpus,small,medium,large,pg")
    parser.add_argument("--skip-parsedmarc", action="store_true")
    parser.add_argument(
        "--parsedmarc-large",
        action="store_true",
        help="Also run parsedmarc on the large report (slow: minutes).",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="Runs of each tool on each input (parsedmarc once on the large report); the "
        "median is shown.",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    WORK.mkdir(parents=True, exist_ok=True)
    inputs = make_inputs(args.small, args.medium, args.large)
    exe = None if args.skip_parsedmarc else ensure_parsedmarc()
    runs: list[Run] = []
    for name in ("corpus", "small", "medium", "large"):
        if name not in wanted:
            continue
        label = {
            "corpus": "shared corpus",
            "small": f"{args.small} small reports",
            "medium": f"1 report, {args.medium} records",
            "large": f"1 report, {args.large} records",
        }[name]
        per_record = name in ("medium", "large")
        if name == "large":  # inboxops and the bare parse in turns: both meet the same moment
            runs += median_pairs(
                args.repeat,
                partial(run_fresh, label, inputs[name], per_record=True),
                partial(run_bare_iterparse, label, inputs[name]),
            )
        else:
            runs.append(
                median(args.repeat, partial(run_fresh, label, inputs[name], per_record=per_record))
            )
        if exe is not None and (name != "large" or args.parsedmarc_large):
            parsed = partial(run_parsedmarc, exe, label, inputs[name], per_record=per_record)
            runs.append(median(1 if name == "large" else args.repeat, parsed))
    if "pg" in wanted:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        pg_schema("create", schema)
        try:
            url = f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
            label = f"1 report, {args.large} records"
            runs.append(run_inboxops(label, inputs["large"], url, per_record=True))
        finally:
            pg_schema("drop", schema)
    startup = min(measure([str(INBOXOPS), "--help"])[0] for _ in range(5))
    report(runs, startup, exe, args.json)
    return 0 if all(r.ok for r in runs) else 1


def report(runs: list[Run], startup: float, exe: Path | None, as_json: bool) -> None:
    if as_json:
        payload = {
            "runs": [asdict(r) | {"rate": round(r.rate, 1)} for r in runs],
            "inboxops_help_seconds": round(startup, 3),
            "parsedmarc": parsedmarc_version(exe) if exe else None,
        }
        print(json.dumps(payload, indent=2))
        return
    print(f"{'input':<28} {'tool':<24} {'seconds':>8} {'rate':>14} {'peak RSS':>10}  ratio")
    by_input: dict[str, dict[str, Run]] = {}
    for r in runs:
        by_input.setdefault(r.input, {})[r.tool] = r
    for r in runs:
        peer = by_input[r.input].get("parsedmarc")
        bare = by_input[r.input].get("lxml iterparse (bare)")
        ratios = []
        if r.tool.startswith("inboxops (sqlite)") and peer and peer.rate:
            ratios.append(f"{r.rate / peer.rate:.1f}x parsedmarc")
        if r.tool.startswith("inboxops") and bare and bare.rate:
            ratios.append(f"{r.rate / bare.rate:.0%} of bare iterparse")
        ratio = ", ".join(ratios)
        flag = "" if r.ok else "  FAILED"
        print(
            f"{r.input:<28} {r.tool:<24} {r.seconds:>8.2f} "
            f"{r.rate:>9.0f} {r.unit[:4]}/s {r.peak_rss_mib:>7.0f} MiB  {ratio}{flag}"
        )
    for r in runs:
        if r.note:
            print(f"  {r.input}, {r.tool}: {r.note}")
    print(
        f"(`inboxops --help` wall time, best of 5: {startup * 1000:.0f} ms; "
        "every run above includes its start-up)"
    )


if __name__ == "__main__":
    sys.exit(main())
