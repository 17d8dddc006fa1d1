"""``inboxops dmarc export``: one flat row per DMARC record, for spreadsheets and other tools.

Each row is a record joined with its report's metadata and its auth results, flattened
(``dkim_domains``, ``spf_results``...). A window selects reports exactly as ``dmarc summary``
does (the midpoint of the date range, ``--domain`` with subdomains), so an export and a summary
over the same window count the same messages.

Memory stays flat however large the window: one query streams the rows (a server-side cursor
on PostgreSQL, SQLite's own stepping cursor, ``yield_per`` rows at a time) in report order,
and rows are grouped back into records as they pass, so only one record's auth results are
held at once. The query runs in a single read transaction: the export is one consistent
snapshot even while a fetch or a prune runs beside it.

Values come from reporters, that is from strangers. CSV cells that a spreadsheet would read
as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) get a leading
``'``; the csv module quotes cells holding separators, quotes or line breaks. JSON Lines
carries the values as they are, lists as lists.

Columns are built in one place, :func:`build_row` beside :data:`COLUMNS`: an enrichment
column (PTR name, sending service, country) is one entry in each. Enrichment is looked up
before the rows stream, once per distinct source IP of the window (through the DNS cache, or
from it alone with ``--offline``), so memory grows with the window's distinct IPs, never with
its records.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine, and_, select

from inboxops.dmarc.model import Source
from inboxops.dmarc.summary import report_filters  # the views' window rule
from inboxops.storage.db import database_errors
from inboxops.storage.models import dmarc_auth_results as auth
from inboxops.storage.models import dmarc_records as rec
from inboxops.storage.models import dmarc_reports as rep
from inboxops.window import Window

YIELD_PER = 2000  # rows fetched from the database at a time

Value = str | int | bool | None | list[str | None]

COLUMNS = (
    "org_name",
    "report_id",
    "begin",
    "end",
    "domain",
    "p",
    "source_ip",
    "ptr",
    "fcrdns",
    "base_domain",
    "service",
    "service_type",
    "country",
    "count",
    "disposition",
    "policy_dkim",
    "policy_spf",
    "header_from",
    "envelope_from",
    "dmarc_pass",
    "dkim_domains",
    "dkim_selectors",
    "dkim_results",
    "spf_domains",
    "spf_scopes",
    "spf_results",
)


def build_row(
    record: Any, auth_rows: Sequence[Any], source: Source | None = None
) -> dict[str, Value]:
    """The export row of one record: ``record`` is a row of :func:`_query`, ``auth_rows``
    the rows carrying its auth results, in order (none when it has none), and ``source`` the
    enrichment of its source IP (None: every enrichment column empty).

    Lists keep their positions across columns: the second DKIM domain, selector and result
    belong together. A reporter may list several SPF results (``mfrom`` and ``helo``), hence
    lists for SPF too.
    """
    dkim = [a for a in auth_rows if a.a_method == "dkim"]
    spf = [a for a in auth_rows if a.a_method == "spf"]
    src = source or _UNKNOWN
    return {
        "org_name": record.org_name,
        "report_id": record.report_id,
        "begin": _iso(record.begin_at),
        "end": _iso(record.end_at),
        "domain": record.domain,
        "p": record.p,
        "source_ip": record.source_ip,
        "ptr": src.ptr,
        "fcrdns": src.fcrdns,
        "base_domain": src.base_domain,
        "service": src.service,
        "service_type": src.service_type,
        "country": src.country,
        "count": int(record.count),
        "disposition": record.disposition,
        "policy_dkim": record.policy_dkim,
        "policy_spf": record.policy_spf,
        "header_from": record.header_from,
        "envelope_from": record.envelope_from,
        "dmarc_pass": bool(record.dmarc_pass),
        "dkim_domains": [a.a_domain for a in dkim],
        "dkim_selectors": [a.a_selector for a in dkim],
        "dkim_results": [a.a_result for a in dkim],
        "spf_domains": [a.a_domain for a in spf],
        "spf_scopes": [a.a_scope for a in spf],
        "spf_results": [a.a_result for a in spf],
    }


_UNKNOWN = Source("")


@lru_cache(maxsize=1024)  # every record of a report repeats its dates
def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite returns naive UTC
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- reading ----------------------------------------------------------------------------------


def _query(window: Window, domain: str | None) -> Any:
    """Records of the window's reports with their auth results (one row per auth result, or
    one row with NULL auth columns), oldest report first, records and results in order."""
    joined = rep.join(rec, rec.c.report_pk == rep.c.id).outerjoin(
        auth, and_(auth.c.report_pk == rec.c.report_pk, auth.c.record_seq == rec.c.seq)
    )
    return (
        select(
            rep.c.org_name,
            rep.c.report_id,
            rep.c.begin_at,
            rep.c.end_at,
            rep.c.domain,
            rep.c.p,
            rec.c.report_pk,
            rec.c.seq,
            rec.c.source_ip,
            rec.c.count,
            rec.c.disposition,
            rec.c.policy_dkim,
            rec.c.policy_spf,
            rec.c.header_from,
            rec.c.envelope_from,
            rec.c.dmarc_pass,
            auth.c.method.label("a_method"),
            auth.c.domain.label("a_domain"),
            auth.c.selector.label("a_selector"),
            auth.c.result.label("a_result"),
            auth.c.scope.label("a_scope"),
        )
        .select_from(joined)
        .where(and_(*report_filters(window, domain)))  # type: ignore[arg-type]
        .order_by(rep.c.window_at, rep.c.id, rec.c.seq, auth.c.seq)
    )


def group_records(rows: Iterable[Any]) -> Iterator[tuple[Any, list[Any]]]:
    """``(record, auth_rows)`` from the joined rows, which arrive grouped by record.

    A record without auth results arrives as one row whose auth columns are NULL.
    """
    current: Any = None
    key: tuple[int, int] | None = None
    auth_rows: list[Any] = []
    for row in rows:
        row_key = (row.report_pk, row.seq)
        if row_key != key:
            if current is not None:
                yield current, auth_rows
            current, key, auth_rows = row, row_key, []
        if row.a_method is not None:
            auth_rows.append(row)
    if current is not None:
        yield current, auth_rows


def source_ips(engine: Engine, window: Window, domain: str | None = None) -> list[str]:
    """The distinct source IPs of the window's records (what enrichment looks up)."""
    query = (
        select(rec.c.source_ip)
        .distinct()
        .select_from(rep.join(rec, rec.c.report_pk == rep.c.id))
        .where(and_(*report_filters(window, domain)))  # type: ignore[arg-type]
    )
    with database_errors(engine, "export from"), engine.connect() as conn:
        return [ip for (ip,) in conn.execute(query)]


def iter_rows(
    engine: Engine,
    window: Window,
    domain: str | None = None,
    *,
    yield_per: int = YIELD_PER,
    sources: Mapping[str, Source] | None = None,
) -> Iterator[dict[str, Value]]:
    """Export rows of every record in ``window``, streamed (see the module docstring), with
    each source IP's enrichment from ``sources`` where given."""
    known = sources or {}
    with database_errors(engine, "export from"), engine.connect() as conn:
        result = conn.execution_options(yield_per=yield_per).execute(_query(window, domain))
        for record, auth_rows in group_records(result):
            yield build_row(record, auth_rows, known.get(record.source_ip))


# -- writing ----------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Value) -> str:
    """One CSV cell: text a spreadsheet would run as a formula gets a leading ``'``.

    Lists are joined with ``;`` (an absent item is empty, so positions still line up).
    Numbers and booleans are ours, not a reporter's, and are written as they are.
    """
    if isinstance(value, str):  # most cells: tested first, this runs ~20 times per record
        text = value
    elif isinstance(value, list):
        text = ";".join([v or "" for v in value])
    elif value is None:
        return ""
    elif isinstance(value, bool):
        return "true" if value else "false"
    else:
        return str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_csv(rows: Iterable[dict[str, Value]], out: TextIO) -> int:
    """A header, then one line per row (RFC 4180: CRLF, quotes only where needed)."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    n = 0
    for row in rows:
        writer.writerow([csv_cell(row[c]) for c in COLUMNS])
        n += 1
    return n


def write_jsonl(rows: Iterable[dict[str, Value]], out: TextIO) -> int:
    """One JSON object per line (non-ASCII escaped, so any byte-safe reader copes)."""
    n = 0
    for row in rows:
        out.write(json.dumps(row, separators=(",", ":")) + "\n")
        n += 1
    return n


FORMATS: dict[str, Callable[[Iterable[dict[str, Value]], TextIO], int]] = {
    "csv": write_csv,
    "jsonl": write_jsonl,
}


@contextmanager
def replacing(path: Path) -> Iterator[TextIO]:
    """A text file that appears at ``path`` only once complete: written beside it under a
    temporary name and renamed, so a failed export never leaves a truncated file that looks
    whole. (The file is private to the user, mode 600: reports name addresses and IPs.)"""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
