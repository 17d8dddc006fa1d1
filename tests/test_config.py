"""Settings: file < environment < flags, a strict schema, secrets that never print themselves."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from inboxops.cli import root
from inboxops.cli.config_cmd import sample_config
from inboxops.config import Secret, Settings, load_settings
from inboxops.config.schema import env_names, keys
from inboxops.errors import ConfigError

ENV_CONTRACT = [
    "INBOXOPS_DB",
    "INBOXOPS_IMAP_HOST",
    "INBOXOPS_IMAP_PORT",
    "INBOXOPS_IMAP_USER",
    "INBOXOPS_IMAP_PASSWORD",
    "INBOXOPS_IMAP_FOLDER",
    "INBOXOPS_IMAP_SECURITY",
    "INBOXOPS_OWN_IPS",
    "INBOXOPS_TELEGRAM_BOT_TOKEN",
    "INBOXOPS_TELEGRAM_CHAT_ID",
    "INBOXOPS_TELEGRAM_API_URL",
    "INBOXOPS_NOTIFY_URLS",
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inboxops.toml"
    path.write_text(text)
    return path


def cli(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(root, args, env=env)
    return result.exit_code, result.stdout, result.stderr


def test_defaults_without_file_or_env() -> None:
    s = load_settings(env={})
    assert s.database.url == ""
    assert s.dmarc.imap.folder == "INBOX"
    assert s.dmarc.imap.security == "ssl"
    assert s.dmarc.imap.effective_port == 993
    assert s.dmarc.alerts.min_pass_rate == 0.95
    assert s.dmarc.alerts.spoof_min_failed == 20
    assert s.telegram.api_url == "https://api.telegram.org"


def test_sample_config_is_inert_and_every_commented_key_is_real(tmp_path: Path) -> None:
    """`inboxops init` ships nothing active (a forgotten edit must not run with an example),
    and uncommenting its examples gives a valid file: the sample never names a dead key."""
    text = sample_config()
    s = load_settings(write(tmp_path, text), env={})
    assert s.dmarc.own_ips == ()
    assert s.dmarc.imap.host == ""
    active = [ln for ln in text.splitlines() if re.match(r"^\s*[a-z_]+\s*=", ln)]
    assert active == []
    uncommented = re.sub(r"(?m)^# ([a-z_]+ = )", r"\1", text)
    # one of each alternative (url is given twice, password and password_file exclude each other)
    seen: set[tuple[str, str]] = set()
    lines, section = [], ""
    for line in uncommented.splitlines():
        if line.startswith("["):
            section = line
        key = line.split("=", 1)[0].strip() if re.match(r"^[a-z_]+ = ", line) else ""
        if key and ((section, key) in seen or key.endswith("_file")):
            continue
        seen.add((section, key))
        lines.append(line)
    full = load_settings(write(tmp_path, "\n".join(lines)), env={})
    assert full.dmarc.own_ips == (
        ipaddress.ip_network("192.0.2.10/32"),
        ipaddress.ip_network("198.51.100.0/28"),
    )
    missing = [name for name in ENV_CONTRACT if name not in text]
    assert missing == []


@pytest.mark.parametrize(
    ("toml", "needles"),
    [
        ('[dmarc]\nown_ip = ["192.0.2.1"]\n', ["own_ip", "[dmarc]", "did you mean own_ips?"]),
        ("[dmarc.alert]\nmin_pass_rate = 0.5\n", ["[dmarc.alert]", "did you mean [dmarc.alerts]"]),
        ('[dmarc.imap]\npasword = "x"\n', ["pasword", "did you mean password?"]),
        ("[dmarcc]\n", ["[dmarcc]", "did you mean [dmarc]"]),
        ('[telegram]\nchatid = "1"\n', ["chatid", "did you mean chat_id?"]),
    ],
)
def test_unknown_keys_and_sections_stop_every_command(
    tmp_path: Path, toml: str, needles: list[str]
) -> None:
    """A typo must not silently switch an alert off: exit 2, naming key, file and a guess."""
    path = write(tmp_path, toml)
    code, out, err = cli(["--config", str(path), "config", "show"])
    assert code == 2, out
    line = err.strip()
    assert line.startswith("Error: ")
    assert "\n" not in line
    for needle in [*needles, str(path)]:
        assert needle in line


@pytest.mark.parametrize(
    ("toml", "needles"),
    [
        ('[dmarc]\nown_ips = "1.2.3.4"\n', ['[dmarc] own_ips = "1.2.3.4"', "list"]),
        ('[dmarc.imap]\nverify_tls = "no"\n', ['[dmarc.imap] verify_tls = "no"', "true or false"]),
        ('[dmarc.alerts]\nmin_pass_rate = "high"\n', ["[dmarc.alerts] min_pass_rate", "number"]),
        ('[dmarc.alerts]\nspoof_min_failed = "20"\n', ["spoof_min_failed", "whole number"]),
        ("[dmarc.alerts]\nspoof_min_failed = 2.5\n", ["spoof_min_failed = 2.5", "whole number"]),
        ("[dmarc.imap]\nport = true\n", ["[dmarc.imap] port = true", "whole number"]),
        ('[dmarc]\nown_ips = ["192.0.2.300"]\n', ['own_ips contains "192.0.2.300"', "CIDR"]),
        ("[dmarc]\ndomains = [1]\n", ["domains contains 1", "strings"]),
        ("[dmarc.alerts]\nmin_pass_rate = 95\n", ["min_pass_rate = 95", "0 to 1"]),
        ('[dmarc.imap]\nsecurity = "tls"\n', ['security = "tls"', "ssl, starttls, none"]),
        ('[notify]\nurls = "json://x"\n', ['[notify] urls = "json://x"', "list"]),
        ("dmarc = 3\n", ["dmarc must be a table"]),
        ('[telegram]\napi_url = "ftp://x"\n', ["api_url", "http:// or https://"]),
    ],
)
def test_wrong_types_name_section_key_value_and_expectation(
    tmp_path: Path, toml: str, needles: list[str]
) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "\n" not in message
    assert "expected a int" not in message
    for needle in needles:
        assert needle in message


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[database]\nurl = "sqlite:///a.db"\n[dmarc]\nown_ips = ["192.0.2.1"]\n'
        '[dmarc.imap]\nhost = "file-host"\nport = 1993\nsecurity = "ssl"\n',
    )
    env = {
        "INBOXOPS_DB": "sqlite:///b.db",
        "INBOXOPS_IMAP_HOST": "env-host",
        "INBOXOPS_IMAP_PORT": "1143",
        "INBOXOPS_IMAP_SECURITY": "STARTTLS",
        "INBOXOPS_IMAP_FOLDER": "Reports",
        "INBOXOPS_IMAP_ALLOW_PLAINTEXT": "yes",
        "INBOXOPS_OWN_IPS": "203.0.113.0/24, 2001:db8::1",
        "INBOXOPS_NOTIFY_URLS": "json://127.0.0.1:1/a,json://127.0.0.1:1/b",
        "INBOXOPS_TELEGRAM_API_URL": "http://127.0.0.1:9/",
    }
    s = load_settings(path, env=env)
    imap = s.dmarc.imap
    assert s.database.url == "sqlite:///b.db"
    assert (imap.host, imap.port, imap.security, imap.folder) == (
        "env-host",
        1143,
        "starttls",
        "Reports",
    )
    assert imap.allow_plaintext is True
    assert [str(n) for n in s.dmarc.own_ips] == ["203.0.113.0/24", "2001:db8::1/128"]
    assert len(s.notify.urls) == 2
    assert s.telegram.api_url == "http://127.0.0.1:9/"


def test_config_path_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, '[dmarc.imap]\nhost = "h"\n')
    assert load_settings(env={"INBOXOPS_CONFIG": str(path)}).dmarc.imap.host == "h"


def test_secrets_from_files_and_masked(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("hunter2\n")
    token_file = tmp_path / "tok"
    token_file.write_text("123:tg-secret\n")
    path = write(tmp_path, f'[dmarc.imap]\npassword_file = "{secret_file}"\n')
    s = load_settings(path, env={"INBOXOPS_TELEGRAM_BOT_TOKEN_FILE": str(token_file)})
    assert s.dmarc.imap.password.reveal() == "hunter2"
    assert s.telegram.bot_token.reveal() == "123:tg-secret"
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.dmarc.imap.password)
    assert Secret("x") == Secret("x")
    both = write(tmp_path, f'[dmarc.imap]\npassword = "a"\npassword_file = "{secret_file}"\n')
    with pytest.raises(ConfigError, match="either password or password_file"):
        load_settings(both, env={})
    gone = write(tmp_path, '[dmarc.imap]\npassword_file = "/nonexistent/pw"\n')
    with pytest.raises(ConfigError, match="cannot read /nonexistent/pw"):
        load_settings(gone, env={})


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"INBOXOPS_IMAP_SECURITY": "tls13"}, "INBOXOPS_IMAP_SECURITY='tls13'"),
        ({"INBOXOPS_OWN_IPS": "192.0.2.1,192.0.2.300"}, "INBOXOPS_OWN_IPS contains"),
        ({"INBOXOPS_IMAP_PORT": "imap"}, "INBOXOPS_IMAP_PORT='imap': expected a whole number"),
        ({"INBOXOPS_IMAP_PORT": "70000"}, "1 to 65535"),
        ({"INBOXOPS_TELEGRAM_API_URL": "ftp://x"}, "INBOXOPS_TELEGRAM_API_URL"),
        ({"INBOXOPS_IMAP_ALLOW_PLAINTEXT": "maybe"}, "true or false"),
    ],
)
def test_bad_env_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inboxops init"):
        load_settings(tmp_path / "nope.toml", env={})
    bad = write(tmp_path, "[dmarc\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})
    unknown = write(tmp_path, "[dmarc.limits]\nmax_bombs = 3\n")
    with pytest.raises(ConfigError, match="max_bombs"):
        load_settings(unknown, env={})
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings(tmp_path, env={})


def test_config_show_prints_every_key_masked(tmp_path: Path) -> None:
    """`config show` is derived from the schema: every key appears, secrets masked."""
    path = write(
        tmp_path,
        '[telegram]\nbot_token = "123:tg-secret-2"\nchat_id = "1"\n'
        # an array of tables shows its keys only with an item in it
        '[[listmonk.instances]]\nname = "main"\nurl = "https://lists.example.net"\n'
        'user = "inboxops"\ntoken = "lm-secret-3"\n'
        '[[dmarc.services]]\nname = "Our relay"\ntype = "ours"\npatterns = ["mta.example.com"]\n',
    )
    code, out, _ = cli(["--config", str(path), "config", "show", "--json"])
    assert code == 0
    assert "tg-secret-2" not in out
    assert "lm-secret-3" not in out
    view = json.loads(out)
    assert view["telegram"]["bot_token"] == "********"
    flat = json.dumps(view)
    for key in keys(Settings):
        name = key.rpartition(".")[2]
        assert f'"{name}"' in flat, key


def test_plaintext_imap_to_another_host_is_refused_before_connecting(tmp_path: Path) -> None:
    """security = "none" to a non-loopback host would hand over the password in clear: exit 2
    at once, naming the setting (192.0.2.1 is unroutable: a connection attempt would time out
    and exit 1 instead, so exit 2 proves nothing was sent)."""
    env = {
        "INBOXOPS_IMAP_HOST": "192.0.2.1",
        "INBOXOPS_IMAP_USER": "dmarc",
        "INBOXOPS_IMAP_PASSWORD": "pw-never-sent",
        "INBOXOPS_IMAP_SECURITY": "none",
        "INBOXOPS_DB": f"sqlite:///{tmp_path / 'x.db'}",
    }
    code, out, err = cli(["dmarc", "fetch"], env)
    assert code == 2
    assert "allow_plaintext" in err
    assert 'security = "none"' in err
    assert "pw-never-sent" not in out + err


def test_plaintext_allowed_explicitly_is_warned_about_every_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from inboxops.config import ImapSettings
    from inboxops.dmarc.fetch import check_plaintext

    allowed = ImapSettings(host="imap.internal.example", security="none", allow_plaintext=True)
    with caplog.at_level(logging.WARNING, logger="inboxops"):
        check_plaintext(allowed)
        check_plaintext(allowed)
    warnings = [r for r in caplog.records if "password_sent_in_clear" in r.getMessage()]
    assert len(warnings) == 2
    check_plaintext(ImapSettings(host="127.0.0.1", security="none"))  # loopback: fine
    check_plaintext(ImapSettings(host="localhost", security="none"))
    check_plaintext(ImapSettings(host="::1", security="none"))
    with pytest.raises(ConfigError):
        check_plaintext(ImapSettings(host="127.0.0.1.example.com", security="none"))
    # an OAuth login sends a bearer token, not a password: the refusal names what is at risk
    with pytest.raises(ConfigError, match="IMAP OAuth access token in clear"):
        check_plaintext(ImapSettings(host="imap.example.net", security="none", auth="xoauth2"))


def test_every_env_name_is_in_the_schema_and_documented() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    names = [name for name, _ in env_names(Settings)]
    assert set(ENV_CONTRACT) <= set(names)
    assert [n for n in names if n not in docs] == []
