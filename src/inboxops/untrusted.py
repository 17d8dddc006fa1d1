"""Text that came from strangers, made safe to show: in a terminal, a log line, an error.

A report's ``report_id``, a zip member's name, a Postfix reply or a listmonk e-mail address is
chosen by whoever sent it. A newline in one would split a ``-v`` log line into two (one of them
forged), an ESC sequence would reach the operator's terminal raw, and a space or ``=`` would
blur the ``key=value`` fields that log readers parse. Everything that prints such text goes
through here: the log formatter (``inboxops.logging``), the table renderer
(``inboxops.cli.render``) and the one-line ``Error:`` of the CLI.
"""

from __future__ import annotations

import json
import re

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_PLAIN_VALUE = re.compile(r"[^\s=\"'\\]+")


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with control characters (newlines, ESC, NUL...) shown as visible escapes."""
    out = text if text.isprintable() else _CONTROL.sub(_escape, text)
    if limit is not None and len(out) > limit:
        return out[: max(limit - 3, 0)] + "..."
    return out


def one_line(text: str, limit: int = 200) -> str:
    """A name from inside an archive, a mail or a log, safe for a one-line message."""
    return printable(text, limit)


def log_value(value: object) -> str:
    """A ``key=value`` log field that stays one field: quoted when it has spaces, ``=``,
    quotes or control characters, so a value can never impersonate another field or line."""
    text = value if isinstance(value, str) else str(value)
    if text and _PLAIN_VALUE.fullmatch(text) and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False).translate(_LINE_BREAKS)


_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029"})
