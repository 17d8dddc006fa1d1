"""Telegram and apprise delivery against real HTTP servers on loopback."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from click.testing import CliRunner

from inboxops.cli import root
from inboxops.config import Secret, Settings
from inboxops.errors import NotifyError
from inboxops.notify import send_alert
from inboxops.notify.telegram import escape_html, send_telegram, split_text
from tests.servers.telegram import TelegramDouble, Webhook


class Sleeps:
    """Records waits instead of sleeping: injected, not patched."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_message_delivered_with_chat_and_html(telegram_server: TelegramDouble) -> None:
    send_telegram(telegram_server.settings(), "<b>hello</b>", sleep=Sleeps())
    [request] = telegram_server.requests
    assert request["body"] == {
        "chat_id": "-100777",
        "text": "<b>hello</b>",
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }


def test_429_waits_retry_after_then_succeeds(telegram_server: TelegramDouble) -> None:
    telegram_server.fail_next("rate_limited")
    sleeps = Sleeps()
    send_telegram(telegram_server.settings(), "x", sleep=sleeps)
    assert sleeps.waits == [3.0]
    assert telegram_server.messages == ["x"]


def test_5xx_is_retried_with_backoff(telegram_server: TelegramDouble) -> None:
    telegram_server.fail_next("server_error", "server_error")
    sleeps = Sleeps()
    send_telegram(telegram_server.settings(), "x", sleep=sleeps)
    assert sleeps.waits == [1.0, 2.0]
    assert len(telegram_server.requests) == 3


def test_persistent_failure_gives_up_after_bounded_tries(telegram_server: TelegramDouble) -> None:
    telegram_server.fail_next(*["server_error"] * 10)
    with pytest.raises(NotifyError, match="after 4 tries"):
        send_telegram(telegram_server.settings(), "x", sleep=Sleeps())
    assert len(telegram_server.requests) == 4


def test_hanging_server_times_out(telegram_server: TelegramDouble) -> None:
    telegram_server.fail_next("hang", "hang", "hang", "hang")
    telegram_server.hang_seconds = 1.5
    with pytest.raises(NotifyError, match="timed out"):
        send_telegram(telegram_server.settings(timeout=0.3), "x", sleep=Sleeps())


def test_wrong_token_never_leaks(
    telegram_server: TelegramDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "999:WRONG-secret-token"
    settings = telegram_server.settings(bot_token=Secret(wrong))
    with pytest.raises(NotifyError) as info:
        send_telegram(settings, "x", sleep=Sleeps())
    assert "INBOXOPS_TELEGRAM_BOT_TOKEN" in str(info.value)
    assert wrong not in str(info.value)
    assert wrong not in caplog.text
    assert len(telegram_server.requests) == 1  # 401 is not retried


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("chat_not_found", "INBOXOPS_TELEGRAM_CHAT_ID"),
        ("migrate", "-1001234567890"),
        ("blocked", "blocked"),
    ],
)
def test_client_errors_explain_the_fix(
    telegram_server: TelegramDouble, kind: str, needle: str
) -> None:
    telegram_server.fail_next(kind)
    with pytest.raises(NotifyError, match=needle):
        send_telegram(telegram_server.settings(), "x", sleep=Sleeps())
    assert len(telegram_server.requests) == 1


def test_unreachable_api_is_retried_then_reported() -> None:
    settings = TelegramDouble(url="http://127.0.0.1:9").settings(timeout=0.5)
    sleeps = Sleeps()
    with pytest.raises(NotifyError, match="connection failed") as info:
        send_telegram(settings, "x", sleep=sleeps)
    assert len(sleeps.waits) == 3
    assert settings.bot_token.reveal() not in str(info.value)


def test_long_text_is_split_under_the_limit(telegram_server: TelegramDouble) -> None:
    text = "\n".join(f"line {i} " + "x" * 90 for i in range(120))
    send_telegram(telegram_server.settings(), text, sleep=Sleeps())
    assert len(telegram_server.messages) == 3
    assert all(len(m) <= 4096 for m in telegram_server.messages)
    assert "\n".join(telegram_server.messages) == text


def test_split_handles_a_single_huge_line() -> None:
    chunks = split_text("y" * 9000)
    assert [len(c) for c in chunks] == [4096, 4096, 808]


def test_escape_html() -> None:
    assert escape_html("550 5.7.1 <user@x> & more") == "550 5.7.1 &lt;user@x&gt; &amp; more"


def test_send_alert_reaches_telegram_and_apprise(
    telegram_server: TelegramDouble, webhook_server: Webhook
) -> None:
    settings = replace(
        Settings(),
        telegram=telegram_server.settings(),
        notify_urls=(Secret(f"json://{webhook_server.url}/hook"),),
    )
    assert send_alert(settings, "title", "<b>body</b>", "body") == ["telegram", "apprise"]
    assert telegram_server.messages == ["<b>body</b>"]
    [posted] = webhook_server.bodies
    assert (posted["title"], posted["message"]) == ("title", "body")


def test_one_failing_channel_does_not_silence_the_other(webhook_server: Webhook) -> None:
    settings = replace(
        Settings(),
        telegram=TelegramDouble(url="http://127.0.0.1:9").settings(timeout=0.2),
        notify_urls=(Secret(f"json://{webhook_server.url}/hook"),),
    )
    with pytest.raises(NotifyError, match="Telegram"):
        send_alert(settings, "t", "b", "b")
    assert len(webhook_server.bodies) == 1


def test_cli_notify_test(telegram_server: TelegramDouble) -> None:
    env = {
        "INBOXOPS_TELEGRAM_BOT_TOKEN": telegram_server.token,
        "INBOXOPS_TELEGRAM_CHAT_ID": "-100777",
        "INBOXOPS_TELEGRAM_API_URL": telegram_server.url,
    }
    result = CliRunner().invoke(root, ["notify", "test", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert '"telegram"' in result.stdout
    assert "inboxops test alert" in telegram_server.messages[0]
    assert telegram_server.token not in result.output


def test_cli_notify_test_without_channels_is_config_error() -> None:
    result = CliRunner().invoke(root, ["notify", "test"])
    assert result.exit_code == 2
    assert "INBOXOPS_TELEGRAM_BOT_TOKEN" in result.output


def test_cli_notify_test_failure_exits_1(telegram_server: TelegramDouble) -> None:
    env = {
        "INBOXOPS_TELEGRAM_BOT_TOKEN": "1:wrong",
        "INBOXOPS_TELEGRAM_CHAT_ID": "-100777",
        "INBOXOPS_TELEGRAM_API_URL": telegram_server.url,
    }
    result = CliRunner().invoke(root, ["notify", "test"], env=env)
    assert result.exit_code == 1
    assert "1:wrong" not in result.output
