"""report keys over full values, window instants, recovered flag

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

* ``report_key`` (sha256 of org_name NUL report_id) becomes the idempotency key of aggregate
  and TLS reports, replacing the unique (org_name, report_id) over columns cut at 255
  characters; org_name and report_id become unbounded text.
* ``window_at``: the midpoint of a report's date range, the one instant that decides which
  window it counts in.
* ``dmarc_reports.recovered``: libxml2 had to repair the XML.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RECOVERED = "recovered from malformed XML"


def _key(org: str, report_id: str) -> str:
    return hashlib.sha256(f"{org}\x00{report_id}".encode("utf-8", "surrogatepass")).hexdigest()


def _aware(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _window(begin: object, end: object) -> datetime | None:
    b, e = _aware(begin), _aware(end)
    if b is None:
        return e
    if e is None or e < b:
        return b
    return b + (e - b) / 2


def _backfill(table_name: str, with_errors: bool) -> None:
    conn = op.get_bind()
    cols = ["id", "org_name", "report_id", "begin_at", "end_at"] + (
        ["errors"] if with_errors else []
    )
    table = sa.table(
        table_name,
        *(sa.column(c) for c in cols),
        sa.column("report_key"),
        sa.column("window_at", sa.DateTime(timezone=True)),
        *([sa.column("recovered")] if with_errors else []),
    )
    rows = conn.execute(sa.select(*(table.c[c] for c in cols))).all()
    for row in rows:
        values: dict[str, object] = {
            "report_key": _key(row.org_name, row.report_id),
            "window_at": _window(row.begin_at, row.end_at),
        }
        if with_errors:
            errors = row.errors
            if isinstance(errors, str):
                errors = json.loads(errors or "[]")
            values["recovered"] = any(RECOVERED in str(e) for e in errors or [])
        conn.execute(table.update().where(table.c.id == row.id).values(**values))


def upgrade() -> None:
    for name, extra in (("dmarc_reports", True), ("tls_reports", False)):
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column("report_key", sa.String(length=64), nullable=True))
            batch.add_column(sa.Column("window_at", sa.DateTime(timezone=True), nullable=True))
            if extra:
                batch.add_column(sa.Column("recovered", sa.Boolean(), nullable=True))
        _backfill(name, extra)
        with op.batch_alter_table(name) as batch:
            batch.alter_column("report_key", existing_type=sa.String(length=64), nullable=False)
            if extra:
                batch.alter_column("recovered", existing_type=sa.Boolean(), nullable=False)
            batch.alter_column("org_name", type_=sa.Text(), existing_type=sa.String(length=255))
            batch.alter_column("report_id", type_=sa.Text(), existing_type=sa.String(length=255))
            batch.drop_constraint(f"uq_{name}_org_report", type_="unique")
            batch.create_unique_constraint(f"uq_{name}_report_key", ["report_key"])
            batch.create_index(f"ix_{name}_window_at", ["window_at"])


def downgrade() -> None:
    for name, extra in (("dmarc_reports", True), ("tls_reports", False)):
        with op.batch_alter_table(name) as batch:
            batch.drop_index(f"ix_{name}_window_at")
            batch.drop_constraint(f"uq_{name}_report_key", type_="unique")
            batch.alter_column("org_name", type_=sa.String(length=255), existing_type=sa.Text())
            batch.alter_column("report_id", type_=sa.String(length=255), existing_type=sa.Text())
            batch.create_unique_constraint(f"uq_{name}_org_report", ["org_name", "report_id"])
            batch.drop_column("window_at")
            batch.drop_column("report_key")
            if extra:
                batch.drop_column("recovered")
