"""Telegram and apprise delivery against real HTTP servers on loopback.

Waits between retries go through an injected ``sleep`` that records them, so the retry policy
is checked exactly and the suite does not sleep; everything else (sockets, timeouts, status
codes, JSON envelopes) is real.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import replace

import httpx
import pytest
from click.testing import CliRunner

from inboxops.cli import root
from inboxops.config import NotifySettings, Secret, Settings
from inboxops.errors import NotifyError
from inboxops.notify import channels_configured, html_to_text, send_alert
from inboxops.notify.apprise_channel import scheme, secret_fragments, send_apprise
from inboxops.notify.telegram import (
    MAX_ATTEMPTS,
    MAX_CHUNKS,
    MAX_RETRY_AFTER,
    escape_html,
    send_telegram,
    split_text,
)
from tests.servers.telegram import CHAT_ID, MIGRATED_CHAT_ID, TelegramDouble, Webhook

UNREACHABLE = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture everything, library loggers included, even after ``inboxops.logging.configure``
    quieted them: an embedding application may turn them up, and secrets must not appear then."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "apprise", "urllib3", "urllib3.connectionpool"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


class Sleeps:
    """Records waits instead of sleeping: injected, not patched."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


# -- Telegram: delivery and retries ---------------------------------------------------------


def test_message_delivered_with_chat_and_html(telegram_server: TelegramDouble) -> None:
    send_telegram(telegram_server.settings(), "<b>hello</b>", sleep=Sleeps())
    [request] = telegram_server.requests
    assert request["path"] == f"/bot{telegram_server.token}/sendMessage"
    assert request["body"] == {
        "chat_id": CHAT_ID,
        "text": "<b>hello</b>",
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }
    assert request["status"] == 200


def test_429_waits_retry_after_then_succeeds(telegram_server: TelegramDouble) -> None:
    telegram_server.fail_next("rate_limited")
    sleeps = Sleeps()
    send_telegram(telegram_server.settings(), "x", sleep=sleeps)
    assert sleeps.waits == [3.0]
    assert telegram_server.messages == ["x"]


def test_429_wait_is_capped_and_attempts_are_bounded(telegram_server: TelegramDouble) -> None:
    telegram_server.retry_after = 3600
    telegram_server.fail_next("rate_limited", times=10)
    sleeps = Sleeps()
    with pytest.raises(NotifyError, match="rate limited"):
        send_telegram(telegram_server.settings(), "x", sleep=sleeps)
    assert sleeps.waits == [MAX_RETRY_AFTER] * (MAX_ATTEMPTS - 1)
    assert len(telegram_server.requests) == MAX_ATTEMPTS


def test_5xx_is_retried_with_backoff(telegram_server: TelegramDouble) -> None:
    telegram_server.fail_next("server_error", "bad_gateway")
    sleeps = Sleeps()
    send_telegram(telegram_server.settings(), "x", sleep=sleeps)
    assert sleeps.waits == [1.0, 2.0]
    assert [r["status"] for r in telegram_server.requests] == [500, 502, 200]


def test_persistent_failure_gives_up_after_bounded_tries(telegram_server: TelegramDouble) -> None:
    telegram_server.fail_next("server_error", times=10)
    with pytest.raises(NotifyError, match=f"after {MAX_ATTEMPTS} tries"):
        send_telegram(telegram_server.settings(), "x", sleep=Sleeps())
    assert len(telegram_server.requests) == MAX_ATTEMPTS


def test_hanging_server_times_out_after_bounded_retries(telegram_server: TelegramDouble) -> None:
    telegram_server.fail_next("hang", times=MAX_ATTEMPTS)
    started = time.monotonic()
    with pytest.raises(NotifyError, match="timed out"):
        send_telegram(telegram_server.settings(timeout=0.2), "x", sleep=Sleeps())
    assert time.monotonic() - started < 2.5  # 4 x 0.2 s, not 4 x the 3 s hang
    assert len(telegram_server.requests) == MAX_ATTEMPTS
    assert telegram_server.messages == []


def test_slow_but_in_time_answer_is_accepted(telegram_server: TelegramDouble) -> None:
    telegram_server.fail_next("hang")
    telegram_server.hang_seconds = 0.2
    send_telegram(telegram_server.settings(timeout=2.0), "x", sleep=Sleeps())
    assert telegram_server.messages == ["x"]


def test_unreachable_api_is_retried_then_reported() -> None:
    settings = TelegramDouble(url=UNREACHABLE).settings(timeout=0.5)
    sleeps = Sleeps()
    with pytest.raises(NotifyError, match="connection failed") as info:
        send_telegram(settings, "x", sleep=sleeps)
    assert sleeps.waits == [1.0, 2.0, 4.0]
    assert settings.bot_token.reveal() not in str(info.value)
    assert info.value.__cause__ is None


# -- Telegram: refusals that no retry fixes, and the token --------------------------------


def test_wrong_token_never_leaks(
    telegram_server: TelegramDouble, all_logs: pytest.LogCaptureFixture
) -> None:
    wrong = "999:WRONG-secret-token"
    settings = telegram_server.settings(bot_token=Secret(wrong))
    with pytest.raises(NotifyError) as info:
        send_telegram(settings, "x", sleep=Sleeps())
    assert "INBOXOPS_TELEGRAM_BOT_TOKEN" in str(info.value)
    assert wrong not in str(info.value)
    assert wrong not in repr(info.value)
    assert wrong not in repr(settings)
    assert wrong not in all_logs.text
    assert "/bot***" in all_logs.text
    assert info.value.__cause__ is None
    assert len(telegram_server.requests) == 1  # 401 is not retried


def test_token_masked_in_the_http_client_log(
    telegram_server: TelegramDouble, all_logs: pytest.LogCaptureFixture
) -> None:
    """httpx logs each request URL at INFO; the token in it is masked, the line kept."""
    telegram_server.fail_next("server_error")
    send_telegram(telegram_server.settings(), "x", sleep=Sleeps())
    assert telegram_server.token not in all_logs.text
    assert "/bot***/sendMessage" in all_logs.text
    assert "event=telegram_retry" in all_logs.text


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("chat_not_found", "check INBOXOPS_TELEGRAM_CHAT_ID"),
        ("migrate", f"INBOXOPS_TELEGRAM_CHAT_ID={MIGRATED_CHAT_ID}"),
        ("blocked", "blocked by the user.*add the bot"),
        ("not_member", "not a member.*add the bot"),
        ("unauthorized", "INBOXOPS_TELEGRAM_BOT_TOKEN"),
    ],
)
def test_client_errors_fail_at_once_and_explain_the_fix(
    telegram_server: TelegramDouble, kind: str, needle: str
) -> None:
    telegram_server.fail_next(kind)
    sleeps = Sleeps()
    with pytest.raises(NotifyError, match=needle):
        send_telegram(telegram_server.settings(), "x", sleep=sleeps)
    assert len(telegram_server.requests) == 1
    assert sleeps.waits == []


def test_unconfigured_or_empty_is_refused_before_any_request(
    telegram_server: TelegramDouble,
) -> None:
    with pytest.raises(NotifyError, match="INBOXOPS_TELEGRAM_CHAT_ID"):
        send_telegram(telegram_server.settings(chat_id=""), "x")
    with pytest.raises(NotifyError, match="empty"):
        send_telegram(telegram_server.settings(), " \n")
    assert telegram_server.requests == []


# -- Telegram: long texts and HTML --------------------------------------------------------


def test_long_text_is_split_at_lines_under_the_limit(telegram_server: TelegramDouble) -> None:
    text = "\n".join(f"line {i} " + "x" * 90 for i in range(120))
    send_telegram(telegram_server.settings(), text, sleep=Sleeps())
    assert len(telegram_server.messages) == 3
    assert all(len(m) <= 4096 for m in telegram_server.messages)
    assert "\n".join(telegram_server.messages) == text


def test_tags_spanning_a_split_are_closed_and_reopened(telegram_server: TelegramDouble) -> None:
    """A <pre> transcript cut in two must still parse on both sides of the cut."""
    text = "<b>bounces</b>\n<pre>" + "\n".join(f"550 5.1.1 &lt;u{i}@x&gt;" for i in range(400))
    text += "</pre>"
    send_telegram(telegram_server.settings(), text, sleep=Sleeps())
    messages = telegram_server.messages
    assert len(messages) == 3
    assert all(len(m) <= 4096 for m in messages)
    assert messages[0].startswith("<b>bounces</b>\n<pre>")
    assert all(m.endswith("</pre>") for m in messages)
    assert all(m.startswith("<pre>") for m in messages[1:])


def test_a_failure_midway_says_how_much_was_sent(telegram_server: TelegramDouble) -> None:
    text = "\n".join("x" * 99 for _ in range(80))  # two messages
    telegram_server.fail_next("ok", "blocked")
    with pytest.raises(NotifyError, match=r"1 of 2 parts were sent"):
        send_telegram(telegram_server.settings(), text, sleep=Sleeps())
    assert len(telegram_server.messages) == 1


def test_split_handles_a_single_huge_line() -> None:
    chunks = split_text("y" * 9000)
    assert [len(c) for c in chunks] == [4096, 4096, 808]


def test_split_never_cuts_an_entity() -> None:
    chunks = split_text("&amp;" * 2000)
    assert all(c.endswith("&amp;") and c.startswith("&amp;") for c in chunks)
    assert "".join(chunks) == "&amp;" * 2000


def test_runaway_text_is_truncated_with_a_note(telegram_server: TelegramDouble) -> None:
    text = "\n".join(f"row {i}" for i in range(20_000))
    send_telegram(telegram_server.settings(), text, sleep=Sleeps())
    assert len(telegram_server.messages) == MAX_CHUNKS
    assert all(len(m) <= 4096 for m in telegram_server.messages)
    assert "[truncated:" in telegram_server.messages[-1]


def test_escape_html() -> None:
    assert escape_html("550 5.7.1 <user@x> & more") == "550 5.7.1 &lt;user@x&gt; &amp; more"


def test_escaped_smtp_reply_reaches_telegram_intact(telegram_server: TelegramDouble) -> None:
    reply = '550 5.7.1 <bob@example.com>: Recipient address rejected & "blocked"'
    send_telegram(telegram_server.settings(), f"<b>{escape_html(reply)}</b>", sleep=Sleeps())
    [text] = telegram_server.messages
    assert "&lt;bob@example.com&gt;" in text
    assert "&amp;" in text
    assert "<bob@" not in text
    assert html_to_text(text) == reply


def test_the_double_speaks_form_encoding_and_telegram_envelopes(
    telegram_server: TelegramDouble,
) -> None:
    base = f"{telegram_server.url}/bot{telegram_server.token}"
    with httpx.Client(timeout=2.0) as client:
        ok = client.post(f"{base}/sendMessage", data={"chat_id": CHAT_ID, "text": "hi"}).json()
        missing = client.post(f"{base}/getMe", json={}).json()
        denied = client.post(f"{telegram_server.url}/bot1:x/sendMessage", json={}).json()
    assert ok["ok"] is True
    assert ok["result"]["chat"] == {"id": int(CHAT_ID), "type": "supergroup"}
    assert ok["result"]["text"] == "hi"
    assert missing == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert denied == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert telegram_server.messages == ["hi"]


# -- apprise -------------------------------------------------------------------------------


def test_apprise_json_url_reaches_the_webhook(webhook_server: Webhook) -> None:
    send_apprise([Secret(f"json://{webhook_server.url}/hook")], "title", "body <x>")
    [posted] = webhook_server.bodies
    assert (posted["title"], posted["message"]) == ("title", "body <x>")
    assert webhook_server.paths == ["/hook"]


def test_apprise_failure_names_the_channel_never_the_url(
    webhook_server: Webhook, all_logs: pytest.LogCaptureFixture
) -> None:
    webhook_server.fail_next()
    url = f"json://alerts:S3cret-Webhook-Pass@{webhook_server.url}/hook-Tk9x2"
    with pytest.raises(NotifyError, match=r"#1 \(json\)") as info:
        send_apprise([Secret(url)], "t", "b")
    assert len(webhook_server.paths) == 1  # reached, refused
    for leak in ("S3cret-Webhook-Pass", "hook-Tk9x2", url):
        assert leak not in str(info.value)
        assert leak not in all_logs.text
    assert "POST /***" in all_logs.text  # urllib3's request line, path masked


def test_unparseable_apprise_url_is_reported_without_echoing_it(
    all_logs: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(NotifyError, match=r"#2 \(bogus\): not a URL apprise understands"):
        send_apprise([Secret("json://127.0.0.1:9/x"), Secret("bogus://Tok3nXYZ@host")], "t", "b")
    assert "Tok3nXYZ" not in all_logs.text


def test_apprise_missing_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # a None entry in sys.modules makes `import apprise` fail: simulates the extra not installed
    monkeypatch.setitem(sys.modules, "apprise", None)
    with pytest.raises(NotifyError, match=r"inboxops\[apprise\]"):
        send_apprise([Secret("json://127.0.0.1:9/x")], "t", "b")


def test_secret_fragments_cover_each_credential_part() -> None:
    parts = secret_fragments("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkc%2BXrI")
    assert {"T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkc+XrI"} <= parts
    assert "pw" in secret_fragments("mailto://me:pw@example.com")  # short passwords too
    assert scheme("mailto://me:pw@example.com") == "mailto"
    assert scheme("not a url") == "?"


# -- send_alert: every channel, failures together ------------------------------------------


def test_send_alert_reaches_telegram_and_apprise(
    telegram_server: TelegramDouble, webhook_server: Webhook
) -> None:
    settings = replace(
        Settings(),
        telegram=telegram_server.settings(),
        notify=NotifySettings(urls=(Secret(f"json://{webhook_server.url}/hook"),)),
    )
    assert channels_configured(settings) == ["telegram", "apprise"]
    assert send_alert(settings, "title", "<b>body</b>", "body") == ["telegram", "apprise"]
    assert telegram_server.messages == ["<b>body</b>"]
    [posted] = webhook_server.bodies
    assert (posted["title"], posted["message"]) == ("title", "body")


def test_apprise_gets_plain_text_when_no_text_body_is_given(webhook_server: Webhook) -> None:
    settings = replace(
        Settings(), notify=NotifySettings(urls=(Secret(f"json://{webhook_server.url}/h"),))
    )
    assert send_alert(settings, "t", "<b>550 &lt;a@b&gt;</b> &amp; more") == ["apprise"]
    assert webhook_server.bodies[0]["message"] == "550 <a@b> & more"


def test_one_failing_channel_does_not_silence_the_other(
    telegram_server: TelegramDouble, webhook_server: Webhook
) -> None:
    telegram_server.fail_next("unauthorized")
    settings = replace(
        Settings(),
        telegram=telegram_server.settings(),
        notify=NotifySettings(urls=(Secret(f"json://{webhook_server.url}/hook"),)),
    )
    with pytest.raises(NotifyError) as info:
        send_alert(settings, "t", "b", "b")
    message = str(info.value)
    assert "not delivered to telegram" in message
    assert "delivered to: apprise" in message
    assert telegram_server.token not in message
    assert len(webhook_server.bodies) == 1


def test_send_alert_without_any_channel() -> None:
    assert channels_configured(Settings()) == []
    with pytest.raises(NotifyError, match="no alert channel configured"):
        send_alert(Settings(), "t", "b")


# -- `inboxops notify test` ----------------------------------------------------------------


def _env(double: TelegramDouble, token: str | None = None) -> dict[str, str]:
    return {
        "INBOXOPS_TELEGRAM_BOT_TOKEN": token or double.token,
        "INBOXOPS_TELEGRAM_CHAT_ID": CHAT_ID,
        "INBOXOPS_TELEGRAM_API_URL": double.url,
    }


def test_cli_notify_test(telegram_server: TelegramDouble) -> None:
    result = CliRunner().invoke(root, ["notify", "test", "--json"], env=_env(telegram_server))
    assert result.exit_code == 0, result.output
    assert '"telegram"' in result.stdout
    assert "inboxops test alert" in telegram_server.messages[0]
    assert telegram_server.token not in result.output


def test_cli_notify_test_reaches_every_channel(
    telegram_server: TelegramDouble, webhook_server: Webhook
) -> None:
    env = _env(telegram_server) | {"INBOXOPS_NOTIFY_URLS": f"json://{webhook_server.url}/h"}
    result = CliRunner().invoke(root, ["notify", "test"], env=env)
    assert result.exit_code == 0, result.output
    assert "delivered to: telegram, apprise" in result.stdout
    assert webhook_server.bodies[0]["title"] == "inboxops test alert"


def test_cli_notify_test_without_channels_is_config_error(
    telegram_server: TelegramDouble,
) -> None:
    result = CliRunner().invoke(root, ["notify", "test"])
    assert result.exit_code == 2
    assert "INBOXOPS_TELEGRAM_BOT_TOKEN" in result.output
    assert telegram_server.requests == []


def test_cli_notify_test_failure_exits_1(telegram_server: TelegramDouble) -> None:
    result = CliRunner().invoke(root, ["notify", "test"], env=_env(telegram_server, "1:wrong"))
    assert result.exit_code == 1
    assert "Error: alert not delivered to telegram" in result.output
    assert "1:wrong" not in result.output
