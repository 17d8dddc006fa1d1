"""``inboxops notify test``: prove the alert channels work before an alert depends on them.

A wrong chat id or a revoked webhook is otherwise found out on the day a spoofer shows up; this
command is the one-minute check to run after setting INBOXOPS_TELEGRAM_* or
INBOXOPS_NOTIFY_URLS.
"""

from __future__ import annotations

import click

from inboxops.cli.context import AppContext, json_option, pass_app
from inboxops.errors import ConfigError

TEST_TITLE = "inboxops test alert"


@click.group()
def notify() -> None:
    """Alert channels: Telegram (INBOXOPS_TELEGRAM_*) and apprise URLs (INBOXOPS_NOTIFY_URLS)."""


@notify.command("test")
@json_option("Print the channels reached (or the failure) as JSON.")
@pass_app
def test_cmd(app: AppContext, as_json: bool) -> None:
    """Send a test alert to every configured channel.

    Exit 0 when every channel accepted it, 1 when one failed (the message says which and why),
    2 when no channel is configured. With --json the result is a JSON object either way:
    {"sent": [...]} or {"error": "...", "exit_code": 1, "sent": [...], "failed": [...]}.
    """
    from inboxops.notify import NO_CHANNEL, channels_configured, send_alert
    from inboxops.notify.telegram import escape_html

    settings = app.settings
    if not channels_configured(settings):
        raise ConfigError(NO_CHANNEL)
    sent_at = f"{app.clock():%Y-%m-%d %H:%M} UTC"
    text = f"{TEST_TITLE}, sent {sent_at}: this channel works."
    body_html = (
        f"<b>{escape_html(TEST_TITLE)}</b>\nsent {escape_html(sent_at)}: this channel works."
    )
    sent = send_alert(settings, TEST_TITLE, body_html, text)
    if as_json:
        app.print_json({"sent": sent, "failed": []})
    else:
        click.echo(f"test alert delivered to: {', '.join(sent)}")
