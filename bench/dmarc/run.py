"""inboxops beside parsedmarc on the same DMARC inputs, in one run.

Inputs: the shared corpus, N generated small reports, one generated report with 100,000
records. Each tool runs as its own subprocess under ``/usr/bin/time`` style accounting (wall
time from ``time.perf_counter``, peak RSS from ``os.wait4``), so both pay their interpreter
start-up and both are measured the same way. inboxops also runs into PostgreSQL.

    .venv/bin/python bench/dmarc/run.py [--small 2000] [--large 100000] [--json]

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
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from common import measure  # noqa: E402  (bench/ is not a package)

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


def make_inputs(small: int, large: int) -> dict[str, Path]:
    from inboxops.demo.generate import generate_large_report, generate_reports

    inputs = {"corpus": CORPUS}
    small_dir = WORK / f"small-{small}"
    if not small_dir.exists():
        generate_reports(small_dir, count=small, seed=11, compress="mixed")
    inputs["small"] = small_dir
    large_file = WORK / f"large-{large}.xml"
    if not large_file.exists():
        generate_large_report(large_file, records=large, seed=11)
    inputs["large"] = large_file
    return inputs


def run_inboxops(name: str, path: Path, db_url: str, *, per_record: bool) -> Run:
    cmd = [str(INBOXOPS), "--db", db_url, "dmarc", "import", "--json", str(path)]
    seconds, rss, code, out = measure(cmd)
    stats = json.loads(out) if out.strip() else {}
    reports = int(stats.get("reports_new", 0))
    records = int(stats.get("records", 0))
    items, unit = (records, "records") if per_record else (reports, "reports")
    backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    return Run(name, f"inboxops ({backend})", seconds, items, unit, rss, code in (0, 3))


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
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--only", default="corpus,small,large,pg")
    parser.add_argument("--skip-parsedmarc", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    WORK.mkdir(parents=True, exist_ok=True)
    inputs = make_inputs(args.small, args.large)
    exe = None if args.skip_parsedmarc else ensure_parsedmarc()
    runs: list[Run] = []
    for name in ("corpus", "small", "large"):
        if name not in wanted:
            continue
        label = {
            "corpus": "shared corpus",
            "small": f"{args.small} small reports",
            "large": f"1 report, {args.large} records",
        }[name]
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            db = f"sqlite:///{tmp}/bench.db"
            runs.append(run_inboxops(label, inputs[name], db, per_record=name == "large"))
        if exe is not None:
            runs.append(run_parsedmarc(exe, label, inputs[name], per_record=name == "large"))
    if "pg" in wanted:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        pg_schema("create", schema)
        try:
            url = f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
            label = f"1 report, {args.large} records"
            runs.append(run_inboxops(label, inputs["large"], url, per_record=True))
        finally:
            pg_schema("drop", schema)
    startup, _, _, _ = measure([str(INBOXOPS), "--version"])
    report(runs, startup, exe, args.json)
    return 0 if all(r.ok for r in runs) else 1


def report(runs: list[Run], startup: float, exe: Path | None, as_json: bool) -> None:
    if as_json:
        payload = {
            "runs": [asdict(r) | {"rate": round(r.rate, 1)} for r in runs],
            "inboxops_startup_seconds": round(startup, 3),
            "parsedmarc": parsedmarc_version(exe) if exe else None,
        }
        print(json.dumps(payload, indent=2))
        return
    print(f"{'input':<28} {'tool':<22} {'seconds':>8} {'rate':>14} {'peak RSS':>10}  ratio")
    by_input: dict[str, dict[str, Run]] = {}
    for r in runs:
        by_input.setdefault(r.input, {})[r.tool] = r
    for r in runs:
        peer = by_input[r.input].get("parsedmarc")
        ratio = ""
        if r.tool.startswith("inboxops (sqlite)") and peer and peer.rate:
            ratio = f"{r.rate / peer.rate:.1f}x parsedmarc"
        flag = "" if r.ok else "  FAILED"
        print(
            f"{r.input:<28} {r.tool:<22} {r.seconds:>8.2f} "
            f"{r.rate:>9.0f} {r.unit[:4]}/s {r.peak_rss_mib:>7.0f} MiB  {ratio}{flag}"
        )
    print(f"(inboxops interpreter start-up, included above: {startup:.2f} s)")


if __name__ == "__main__":
    sys.exit(main())
