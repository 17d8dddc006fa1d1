"""``inboxops notify test``: prove the alert channels work before an alert depends on them."""

from __future__ import annotations

import click

from inboxops.cli.context import AppContext

pass_app = click.make_pass_decorator(AppContext)


@click.group()
def notify() -> None:
    """Alert channels: Telegram (INBOXOPS_TELEGRAM_*) and apprise URLs (INBOXOPS_NOTIFY_URLS)."""


@notify.command("test")
@click.option("--json", "as_json", is_flag=True, help="Print the channels reached as JSON.")
@pass_app
def test_cmd(app: AppContext, as_json: bool) -> None:
    """Send a test alert to every configured channel.

    Exit 0 when every channel accepted it, 1 when one failed (the message says which and why),
    2 when no channel is configured.
    """
    from inboxops.notify import send_alert
    from inboxops.notify.telegram import escape_html

    now = app.clock()
    text = f"inboxops test alert, sent {now:%Y-%m-%d %H:%M} UTC: this channel works."
    sent = send_alert(app.settings, "inboxops test alert", escape_html(text), text)
    if as_json:
        app.print_json({"sent": sent})
    else:
        click.echo(f"test alert delivered to: {', '.join(sent)}")
