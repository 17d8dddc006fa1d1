"""Docs that cannot fall behind: every command, option, config key and env name is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from inboxops.cli import root
from inboxops.cli.config_cmd import sample_config
from inboxops.config import Settings
from inboxops.config.schema import env_names, keys

DOCS = Path(__file__).resolve().parent.parent / "docs"
ALL_DOCS = "\n".join(p.read_text() for p in sorted(DOCS.glob("*.md")))


def _commands(group: click.Group, prefix: str = "inboxops") -> list[tuple[str, click.Command]]:
    """Every command below ``group``, loaded the way the CLI loads it (the root is lazy)."""
    out: list[tuple[str, click.Command]] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        path = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            if cmd.invoke_without_command:  # `inboxops health` runs itself and has options
                out.append((path, cmd))
            out.extend(_commands(cmd, path))
        else:
            out.append((path, cmd))
    return out


COMMANDS = _commands(root)


def test_the_walk_sees_every_command() -> None:
    """The walk itself: a lazy root whose commands it did not load would check nothing."""
    paths = {p for p, _ in COMMANDS}
    for expected in ("inboxops dmarc import", "inboxops health", "inboxops demo"):
        assert expected in paths
    assert len(paths) >= 25


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_and_option_is_documented(path: str, command: click.Command) -> None:
    """Each command appears on a docs page, and each of its options on a page that names it
    (an option mentioned only for some other command does not count)."""
    words = path.split()[1:]
    pattern = re.compile(r"inboxops\s+" + r"\s+".join(map(re.escape, words)) + r"\b")
    pages = [p.read_text() for p in sorted(DOCS.glob("*.md")) if pattern.search(p.read_text())]
    assert pages, f"{path} is not in docs/"
    text = "\n".join(pages)
    for param in command.params:
        if isinstance(param, click.Option):
            documented = [o for o in param.opts if o.startswith("--") and o in text]
            assert documented, f"{path}: option {param.opts} is not on its docs page"


def test_every_config_key_is_documented_and_in_the_sample() -> None:
    """Every key of the schema has a row in docs/configuration.md and a (commented) line in
    the sample `inboxops init` writes."""
    text = (DOCS / "configuration.md").read_text()
    sample = sample_config()
    undocumented = [k for k in keys(Settings) if k not in text]
    assert undocumented == []
    for key in keys(Settings):
        section, _, name = key.rpartition(".")
        header = "[" + section.strip("[]") + "]"
        if "[]" not in header:  # arrays of tables are documented, sampled as a block
            assert header in sample, key
        as_key = re.search(rf"(?m)^#?\s*{re.escape(name)}\s*=", sample)
        as_table = f"[{section.strip('[]')}.{name}]" in sample  # a table-valued key
        assert as_key or as_table, key


def test_every_env_name_in_the_schema_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    assert sorted(n for n, _ in env_names(Settings) if n not in text) == []


def test_readme_first_screen_has_the_two_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text().splitlines()[:20]
    first = "\n".join(readme)
    assert "make demo" in first
    assert "make test" in first
