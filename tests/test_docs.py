"""Docs that cannot fall behind: every command, option, config key and env name is documented."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click
import pytest

from inboxops.cli import root
from inboxops.cli.config_cmd import sample_config

DOCS = Path(__file__).resolve().parent.parent / "docs"
ALL_DOCS = "\n".join(p.read_text() for p in sorted(DOCS.glob("*.md")))


def _commands(group: click.Group, prefix: str = "inboxops") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, cmd in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, path))
        else:
            out.append((path, cmd))
    return out


COMMANDS = _commands(root)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_and_option_is_documented(path: str, command: click.Command) -> None:
    words = path.split()[1:]
    assert re.search(r"inboxops\s+" + r"\s+".join(map(re.escape, words)), ALL_DOCS), path
    for param in command.params:
        if isinstance(param, click.Option):
            documented = [o for o in param.opts if o.startswith("--") and o in ALL_DOCS]
            assert documented, f"{path}: option {param.opts} is not in docs/"


def _keys(table: dict[str, object], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in table.items():
        if isinstance(value, dict):
            keys.extend(_keys(value, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


def test_every_sample_config_key_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    for key in _keys(tomllib.loads(sample_config())):
        section, _, name = key.rpartition(".")
        assert f"[{section}].{name}" in text, key


def test_every_env_name_in_code_is_documented() -> None:
    source = (Path(__file__).resolve().parent.parent / "src/inboxops/config.py").read_text()
    names = set(re.findall(r"INBOXOPS_[A-Z_]+", source)) - {"INBOXOPS_"}
    text = (DOCS / "configuration.md").read_text()
    assert sorted(n for n in names if n not in text) == []


def test_readme_first_screen_has_the_two_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text().splitlines()[:20]
    first = "\n".join(readme)
    assert "make demo" in first
    assert "make test" in first
