"""Small builders shared by tests: synthetic aggregate reports with chosen outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def aggregate_xml(
    *,
    org: str = "google.com",
    report_id: str = "r1",
    domain: str = "example.com",
    p: str = "none",
    begin: datetime = datetime(2026, 11, 22, tzinfo=UTC),
    end: datetime = datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC),
    rows: Sequence[tuple[str, int, bool]] = (("192.0.2.10", 10, True),),
) -> bytes:
    """A report whose rows are (source_ip, count, dmarc_pass)."""
    records = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>"
        f"<disposition>none</disposition><dkim>{'pass' if ok else 'fail'}</dkim>"
        f"<spf>{'pass' if ok else 'fail'}</spf></policy_evaluated></row>"
        f"<identifiers><header_from>{domain}</header_from></identifiers>"
        f"<auth_results><dkim><domain>{domain if ok else 'other.example'}</domain>"
        f"<selector>s1</selector><result>{'pass' if ok else 'fail'}</result></dkim>"
        f"<spf><domain>{domain}</domain><scope>mfrom</scope>"
        f"<result>{'pass' if ok else 'fail'}</result></spf></auth_results></record>"
        for ip, count, ok in rows
    )
    return (
        f'<?xml version="1.0"?><feedback><version>1.0</version><report_metadata>'
        f"<org_name>{org}</org_name><email>noreply@{org}</email><report_id>{report_id}</report_id>"
        f"<date_range><begin>{int(begin.timestamp())}</begin><end>{int(end.timestamp())}</end>"
        f"</date_range></report_metadata><policy_published><domain>{domain}</domain>"
        f"<adkim>r</adkim><aspf>r</aspf><p>{p}</p><sp>{p}</sp><pct>100</pct></policy_published>"
        f"{records}</feedback>"
    ).encode()


def write_report(directory: Path, name: str, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    return path


def refuse_operationally(engine: Engine, table: str, when: str, *, on: str = "INSERT") -> None:
    """Make the database fail operationally (not over a value) when a row of ``table`` matching
    ``when`` is inserted (``on="INSERT"``) or deleted (``on="DELETE"``): PostgreSQL raises
    SQLSTATE 53100, the code of a full disk; SQLite raises an OperationalError from inside the
    trigger, as a disk I/O error would. Undone by :func:`allow_operations`."""
    name = _trigger(on)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'could not extend file: No space left on device' "
                    "USING ERRCODE = 'disk_full'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE {on} ON {table} FOR EACH ROW "
                    f"WHEN ({when}) EXECUTE FUNCTION {name}()"
                )
            )
        else:
            # json() of malformed text fails only when it runs, so WHEN really selects the rows
            # (an unknown function would fail every statement when it is prepared)
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE {on} ON {table} WHEN {when} "
                    "BEGIN SELECT json('{disk I/O error'); END"
                )
            )


def allow_operations(engine: Engine, table: str, *, on: str = "INSERT") -> None:
    name = _trigger(on)
    with engine.begin() as conn:
        pg = engine.dialect.name == "postgresql"
        conn.execute(text(f"DROP TRIGGER {name}{' ON ' + table if pg else ''}"))


def _trigger(on: str) -> str:
    return {"INSERT": "refuse", "DELETE": "refuse_delete"}[on]


def refuse_writes_operationally(engine: Engine, table: str, when: str) -> None:
    refuse_operationally(engine, table, when, on="INSERT")


def allow_writes(engine: Engine, table: str) -> None:
    allow_operations(engine, table, on="INSERT")


def refuse_values(engine: Engine, table: str, column: str, value: str) -> None:
    """Make the database refuse one value (as a CHECK would): a data error, not an outage."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_value() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'value refused' USING ERRCODE = 'check_violation'; "
                    "END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse_value BEFORE INSERT ON {table} FOR EACH ROW "
                    f"WHEN (NEW.{column} = '{value}') EXECUTE FUNCTION refuse_value()"
                )
            )
        else:
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse_value BEFORE INSERT ON {table} "
                    f"WHEN NEW.{column} = '{value}' BEGIN SELECT RAISE(ABORT, 'value refused'); END"
                )
            )
