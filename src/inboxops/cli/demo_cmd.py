"""``inboxops demo``: the whole loop on generated data, in a directory and database of its own.

The demo never touches the operator's real database: unless ``--db`` is given it uses a SQLite
file inside the demo directory, so ``make demo`` can be run on a production host safely. And
it never deletes what it did not create: the directory must be new, empty, or a previous demo
output, recognised by the manifest the demo writes (``.inboxops-demo.json``, listing every file
it made); a rerun removes exactly those files.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import click

from inboxops.cli import demo_reputation
from inboxops.cli.context import AppContext, pass_app
from inboxops.cli.dmarc_alert import print_alerts
from inboxops.cli.render import Col, print_table, say
from inboxops.config import parse_networks
from inboxops.errors import ConfigError

DEMO_OWN_IPS = ("192.0.2.10", "192.0.2.11", "198.51.100.25")
MANIFEST = ".inboxops-demo.json"


def prepare_directory(directory: Path) -> None:
    """Make ``directory`` ready for a demo run without deleting anything of the user's."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file; give --dir a new or empty directory")
    manifest = directory / MANIFEST
    if directory.is_dir() and any(directory.iterdir()):
        if not manifest.is_file():
            raise ConfigError(
                f"{directory} is not empty and is not an inboxops demo directory; give --dir a "
                "new or empty directory (the demo never deletes files it did not create)"
            )
        _remove_listed(directory, manifest)
    directory.mkdir(parents=True, exist_ok=True)


def _remove_listed(directory: Path, manifest: Path) -> None:
    """Delete the files a previous demo listed (and directories it left empty); nothing else."""
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        raise ConfigError(
            f"{manifest} is unreadable; remove the demo directory {directory} by hand"
        ) from None
    root = directory.resolve()
    parents: set[Path] = set()
    for name in listed:
        path = (directory / str(name)).resolve()
        if root not in path.parents:  # a manifest never points outside its directory
            continue
        if path.is_file() or path.is_symlink():
            path.unlink()
            parents.update(p for p in path.parents if root in p.parents)
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    manifest.unlink()


def _write_manifest(directory: Path, files: list[Path]) -> None:
    names = sorted(str(p.relative_to(directory)) for p in files)
    (directory / MANIFEST).write_text(
        json.dumps({"written_by": "inboxops demo", "files": names}, indent=1), encoding="utf-8"
    )


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".demo",
    show_default=True,
    help="Where the sample data and the demo database go: a new or empty directory, or a "
    "previous demo output (whose own files are replaced; nothing else is touched).",
)
@click.option("--reports", type=click.IntRange(1, 100_000), default=300, show_default=True)
@click.option(
    "--log-lines",
    type=click.IntRange(5_000, 10_000_000),
    default=120_000,
    show_default=True,
    help="Size of the generated 14-day Postfix fleet log.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same data.")
@pass_app
def demo(app: AppContext, directory: Path, reports: int, log_lines: int, seed: int) -> None:
    """Generate sample DMARC reports and a Postfix fleet log; ingest both; print what you'd see.

    The DMARC sample tells a story: three own sending IPs, one of them with a broken DKIM
    selector (about 80% pass), and one outside IP spoofing the domain. The 14-day fleet log
    tells another: the dedicated Microsoft IP of postfix-out07 is blocked by Microsoft over
    the last days. Nothing is sent to any alert channel; the alerts are printed.
    """
    from inboxops.demo.generate import generate_reports
    from inboxops.dmarc import alerting, summary
    from inboxops.dmarc.ingest import Ingestor
    from inboxops.dmarc.store import DatabaseSink
    from inboxops.storage.db import open_database

    prepare_directory(directory)
    db_file = directory / "inboxops-demo.db"
    db_url = app.db_url or f"sqlite:///{db_file.resolve()}"
    console = app.console

    paths = generate_reports(
        directory / "reports", count=reports, seed=seed, own_ips=DEMO_OWN_IPS, start=app.clock()
    )
    created = [*paths, db_file, db_file.with_name(db_file.name + "-wal")]
    config_file = directory / "inboxops-demo.toml"
    created += [db_file.with_name(db_file.name + "-shm"), directory / "maillog" / "mail.log"]
    created.append(config_file)
    _write_manifest(directory, created)
    say(console, f"generated {len(paths)} sample reports in {directory / 'reports'}")

    engine = open_database(db_url)
    try:
        stats = Ingestor(DatabaseSink(engine), app.settings.dmarc.limits).ingest_paths(
            [directory / "reports"]
        )
        say(
            console,
            f"ingested into {db_url}: {stats.reports_new} reports, {stats.records} records, "
            f"{stats.messages} messages",
        )
        own = parse_networks(list(DEMO_OWN_IPS), origin="demo")
        settings = replace(app.settings, dmarc=replace(app.settings.dmarc, own_ips=own))
        window = summary.Window(app.clock() - timedelta(days=7), app.clock())
        ips = summary.ip_stats(engine, window, own)
        print_table(
            console,
            f"DMARC by source IP, {window.describe()} (top 15)",
            [
                Col("source IP", "key"),
                Col("own", "key"),
                Col("messages", "number"),
                Col("failed", "number"),
                Col("pass rate", "number"),
                Col("reporters"),
            ],
            [
                (
                    s.ip,
                    "yes" if s.own else "",
                    str(s.messages),
                    str(s.failed),
                    f"{s.pass_rate:.1%}",
                    ", ".join(s.orgs[:3]) + (" ..." if len(s.orgs) > 3 else ""),
                )
                for s in ips[:15]
            ],
        )
        run = alerting.check(engine, settings, window, dry_run=True, offline=True)
        if not run.alerts:
            say(console, "no DMARC alerts: all healthy")
        else:
            say(console, "DMARC alerts (printed, not sent: this is the demo)", "bold")
            print_alerts(console, run.alerts)
        console.print()
        demo_reputation.run(
            console, engine, app.settings, directory, app.clock(), seed, lines=log_lines
        )
    finally:
        engine.dispose()
    demo_reputation.write_config(config_file, db_url, DEMO_OWN_IPS, app.settings)
    say(console, f"Explore (the demo's settings are in {config_file}):")
    for command in ("dmarc summary --by org", "reputation trend --days 14", "health history"):
        say(console, f"  inboxops --config {config_file} {command}")
