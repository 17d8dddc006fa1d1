"""[listmonk] and [exclusions]: named instances, the single env-configured instance, tokens
from files and per-instance environment variables, and the checks that stop a bad config."""

from __future__ import annotations

from pathlib import Path

import pytest

from inboxops.config import load_settings
from inboxops.config.hygiene import listmonk_instances
from inboxops.errors import ConfigError

TWO = """
[[listmonk.instances]]
name = "main"
url = "https://lists.example.net"
user = "inboxops"
token = "file-token-main"

[[listmonk.instances]]
name = "hc"
url = "https://hc.example.net/listmonk/"
user = "admin"
token_file = "{token_file}"
timeout = 10
auth = "BASIC"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inboxops.toml"
    path.write_text(text)
    return path


def test_named_instances_tokens_from_file_and_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "hc_token"
    token_file.write_text("hc-secret\n")
    path = write(tmp_path, TWO.format(token_file=token_file))
    settings = load_settings(path, env={})
    assert settings.listmonk.names == ["main", "hc"]
    main, hc = listmonk_instances(settings.listmonk, {})
    assert (main.name, main.url, main.user, main.token.reveal(), main.auth) == (
        "main",
        "https://lists.example.net",
        "inboxops",
        "file-token-main",
        "auto",
    )
    assert (hc.base_url, hc.token.reveal(), hc.timeout, hc.auth) == (
        "https://hc.example.net/listmonk",
        "hc-secret",
        10.0,
        "basic",
    )
    assert "hc-secret" not in repr(settings)
    # INBOXOPS_LISTMONK_<NAME>_TOKEN wins over the file; ..._TOKEN_FILE works too
    other = tmp_path / "other"
    other.write_text("from-env-file")
    env = {
        "INBOXOPS_LISTMONK_MAIN_TOKEN": "from-env",
        "INBOXOPS_LISTMONK_HC_TOKEN_FILE": str(other),
    }
    main, hc = listmonk_instances(settings.listmonk, env)
    assert (main.token.reveal(), hc.token.reveal()) == ("from-env", "from-env-file")
    [only] = listmonk_instances(settings.listmonk, env, ("hc",))
    assert only.name == "hc"


def test_single_default_instance_from_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "tok"
    token_file.write_text("t-from-file\n")
    env = {
        "INBOXOPS_LISTMONK_URL": "https://lists.example.net",
        "INBOXOPS_LISTMONK_USER": "inboxops",
        "INBOXOPS_LISTMONK_TOKEN_FILE": str(token_file),
    }
    settings = load_settings(env=env)
    [default] = listmonk_instances(settings.listmonk, env)
    assert (default.name, default.user, default.token.reveal()) == (
        "default",
        "inboxops",
        "t-from-file",
    )
    # with named instances too: default first
    path = write(tmp_path, TWO.format(token_file=token_file))
    both = load_settings(path, env=env)
    assert both.listmonk.names == ["default", "main", "hc"]


def test_nothing_configured_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="INBOXOPS_LISTMONK_URL"):
        listmonk_instances(load_settings(env={}).listmonk, {})
    path = write(tmp_path, TWO.format(token_file=tmp_path / "none"))
    with pytest.raises(ConfigError, match="cannot read"):  # a token_file is read on load
        load_settings(path, env={})
    (tmp_path / "none").write_text("x")
    settings = load_settings(path, env={})
    with pytest.raises(
        ConfigError, match=r"no listmonk instance called 'mian'; configured: main, hc"
    ):
        listmonk_instances(settings.listmonk, {}, ("mian",))


@pytest.mark.parametrize(
    ("toml", "env", "needle"),
    [
        ('[[listmonk.instances]]\nurl = "https://x.example"\n', {}, "has no name"),
        ('[[listmonk.instances]]\nname = "main"\n', {}, "(main) has no url"),
        (
            '[[listmonk.instances]]\nname = "my-lm"\nurl = "https://x.example"\n',
            {},
            "name 'my-lm' must be",
        ),
        (
            '[[listmonk.instances]]\nname = "Main"\nurl = "https://x.example"\n',
            {},
            "lower-case",
        ),
        (
            '[[listmonk.instances]]\nname = "a"\nurl = "https://x.example"\n'
            '[[listmonk.instances]]\nname = "a"\nurl = "https://y.example"\n',
            {},
            "'a' is used twice",
        ),
        (
            '[[listmonk.instances]]\nname = "default"\nurl = "https://x.example"\n',
            {"INBOXOPS_LISTMONK_URL": "https://y.example"},
            "rename one of them",
        ),
        (
            '[[listmonk.instances]]\nname = "a"\nurl = "https://x.example"\nauth = "oauth"\n',
            {},
            "one of auto, token, basic",
        ),
        (
            '[[listmonk.instances]]\nname = "a"\nurl = "https://x.example"\ntokne = "x"\n',
            {},
            "did you mean token?",
        ),
        ("[listmonk]\ninstances = 3\n", {}, "an array of tables ([[listmonk.instances]])"),
        ('[exclusions]\nrules = ["*bad.com"]\n', {}, '[exclusions] rules contains "*bad.com"'),
    ],
)
def test_bad_config_stops_at_load(
    tmp_path: Path, toml: str, env: dict[str, str], needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, toml), env=env)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("toml", "env", "needle"),
    [
        (
            '[[listmonk.instances]]\nname = "main"\nurl = "https://x.example"\nuser = "u"\n',
            {},
            "set INBOXOPS_LISTMONK_MAIN_TOKEN",
        ),
        (
            '[[listmonk.instances]]\nname = "main"\nurl = "ftp://x.example"\n',
            {},
            "url must look like",
        ),
        (
            "",
            {"INBOXOPS_LISTMONK_URL": "https://x.example", "INBOXOPS_LISTMONK_TOKEN": "t"},
            "a token but no user",
        ),
        (
            '[[listmonk.instances]]\nname = "main"\nurl = "https://x.example"\n',
            {"INBOXOPS_LISTMONK_TOKEN": "meant-for-main"},
            "but no url",
        ),
    ],
)
def test_incomplete_instances_stop_the_command(
    tmp_path: Path, toml: str, env: dict[str, str], needle: str
) -> None:
    settings = load_settings(write(tmp_path, toml), env=env)
    with pytest.raises(ConfigError, match=needle):
        listmonk_instances(settings.listmonk, env)
