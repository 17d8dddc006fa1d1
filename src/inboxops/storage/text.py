"""Text bound for the database is cleaned here, once, for every table present and future.

Reports and logs come from strangers: a TLS report's ``"organization-name": "evil\\u0000org"``
or a NUL in a mail header is legal JSON or MIME, yet PostgreSQL refuses NUL in text outright
(SQLite stores it), and control characters or lone surrogates (from ``surrogateescape``
decoding) make later reads, logs and terminals misbehave. So every string a column receives
passes :func:`clean_text`: NUL, other C0/C1 controls except tab, newline and carriage return,
and lone surrogates become U+FFFD. Both databases then store the same thing.

Every route to the database calls it: SQLAlchemy Core writes through the column types of
:mod:`inboxops.storage.types` (every String/Text/JSON column in ``models.py`` uses them; a
test fails on a column that does not), and the driver-level hot paths (``dmarc/rows.py``,
``reputation/store.py``) through :func:`clean_row`, except for the aggregate parser's own
values, which :mod:`inboxops.dmarc.parse` cleans as it reads them
(``tests/test_parse_speed_paths.py``) so that a 100,000-record report is not scanned twice.

Pure (no SQLAlchemy): the parsers import it, and parsing workers start before the database
layer is imported (:mod:`inboxops.dmarc.pool`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

REPLACEMENT = "\ufffd"
_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(value: str) -> str:
    """``value`` with characters no database column should hold replaced by U+FFFD.

    ``isprintable`` runs in C and is true for almost every value, so the regex only runs on
    the rare value that needs it: this sits on the 100,000-record hot path.
    """
    if value.isprintable() or not _BAD.search(value):
        return value
    return _BAD.sub(REPLACEMENT, value)


def clean_json(value: Any) -> Any:
    """Every string inside a JSON-able value, keys included, cleaned."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_json(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def clean_row(row: Sequence[Any], text_columns: Sequence[int]) -> tuple[Any, ...]:
    """A driver-level row with its text columns cleaned (a new tuple only when needed).

    JSON columns arrive here already serialised (text on SQLite) or wrapped for the driver
    (PostgreSQL): callers pass JSON values through :func:`clean_json` before wrapping them.
    """
    for i in text_columns:
        value = row[i]
        if type(value) is str and not value.isprintable() and _BAD.search(value):
            out = list(row)
            for j in text_columns:
                if type(out[j]) is str:
                    out[j] = clean_text(out[j])
            return tuple(out)
    return tuple(row)
