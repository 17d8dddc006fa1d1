"""`inboxops --help` and `--version` start instantly: no command module is imported for them.

Cron wrappers, shell completion and a user typing `inboxops -h` should not pay for SQLAlchemy,
lxml, rich or httpx. The guarantee is structural (which modules get imported), not a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from inboxops.cli import LAZY_COMMANDS, load_command, root

HEAVY = ("sqlalchemy", "lxml", "rich", "httpx", "alembic", "dns", "inboxops.config")

_PROBE = """
import json, sys
from inboxops.cli import root
try:
    root.main(sys.argv[1:], prog_name="inboxops")
except SystemExit:
    pass
loaded = sorted({m for m in sys.modules for h in %r if m == h or m.startswith(h + ".")})
sys.stderr.write("LOADED=" + json.dumps(loaded) + "\\n")
"""


def _loaded_after(*args: str) -> tuple[str, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE % (HEAVY,), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("LOADED=")]
    return proc.stdout, json.loads(line.removeprefix("LOADED="))


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["-h"]])
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    out, loaded = _loaded_after(*args)
    assert out.strip()
    assert loaded == []


def test_the_command_list_shows_every_command_without_loading_it() -> None:
    out, loaded = _loaded_after("--help")
    listed = out.split("Commands:", 1)[1]
    for name in LAZY_COMMANDS:
        assert f"\n  {name} " in listed
    assert loaded == []


def test_a_sub_command_loads_what_it_needs() -> None:
    out, _ = _loaded_after("dmarc", "--help")
    assert "\n  prune " in out  # added to the dmarc group by dmarc_maint
    assert "\n  tls " in out  # ... by dmarc_views
    assert "\n  alert " in out  # ... and by dmarc_alert


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_the_stored_one_line_help_is_the_commands_own(name: str) -> None:
    """The list in --help is written from LAZY_COMMANDS: it must say what the command says."""
    real = load_command(name)
    stored = click.Command(name, help=LAZY_COMMANDS[name][2])
    assert real.get_short_help_str(300) == stored.get_short_help_str(300)
    assert root.get_command(click.Context(root), name) is real


def test_dmarc_parsing_workers_start_without_the_database_layer() -> None:
    """``dmarc import`` forks its parsing workers before the database is opened, so they parse
    while the main process imports SQLAlchemy: nothing the workers run may import it."""
    probe = (
        "import sys\n"
        "from inboxops.dmarc import pool\n"
        "from inboxops.dmarc.parsed import parse_small, read_head\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic')))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


_EXIT_PROBE = """
import atexit, gc, sys
atexit.register(lambda: sys.stderr.write(f"FROZEN={gc.get_freeze_count()}\\n"))
from inboxops.cli import main
sys.argv = ["inboxops", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["dmarc", "import", "--json"], 3),  # one file refused: exit 3, the whole JSON printed
        (["--db", "sqlite://", "dmarc", "summary"], 2),  # a usage error: one line, exit 2
    ],
)
def test_the_entry_point_keeps_exit_codes_and_output_and_spares_the_teardown(
    tmp_path: Path, args: list[str], code: int
) -> None:
    """The console script freezes what the command left alive before the interpreter's
    teardown (whose cycle collections over it cost a tenth of a short import); exit codes,
    stdout and the atexit handlers are untouched."""
    if args[-1] == "--json":
        bad = tmp_path / "broken.xml"
        bad.write_bytes(b"<feedback><report_metadata><org_name>x")
        args = ["--db", f"sqlite:///{tmp_path / 'x.db'}", *args, str(bad)]
    proc = subprocess.run(
        [sys.executable, "-c", _EXIT_PROBE, *args], capture_output=True, text=True, check=False
    )
    assert proc.returncode == code, proc.stderr
    [frozen] = [x for x in proc.stderr.splitlines() if x.startswith("FROZEN=")]  # atexit ran
    assert int(frozen.removeprefix("FROZEN=")) > 0  # ... after the freeze
    if code == 3:
        payload = json.loads(proc.stdout)
        assert (payload["quarantined"], len(payload["failed"])) == (1, 1)
    else:
        assert len([x for x in proc.stderr.splitlines() if not x.startswith("FROZEN=")]) == 1
