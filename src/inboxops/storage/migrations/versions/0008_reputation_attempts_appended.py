"""reputation: attempts numbered as they arrive; the line digest a unique key beside it

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

``rep_attempts`` was keyed by its line digest (``fp``, on SQLite the rowid itself). A digest is
random, so each ingest wrote its rows all over the table and every transaction rewrote most of
its pages. Rows now take an ``id`` in arrival order (appended, page after page) and ``fp`` keeps
each line once through a unique index. The table is copied in day and time order, so a day's
attempts lie together for the daily rollup and `reputation prune`. Nothing stored changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMNS = (
    "fp, rkey, ts, day, syslog_name, domain, operator, segment, relay_host, dsn, code, status, "
    "reason, reply, qkey"
)


def _text(length: int) -> sa.String:
    return sa.String(length)


def _attempt_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("rkey", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("syslog_name", _text(255), nullable=False),
        sa.Column("domain", _text(255), nullable=False),
        sa.Column("operator", _text(32), nullable=False),
        sa.Column("segment", _text(32), nullable=False),
        sa.Column("relay_host", _text(255)),
        sa.Column("dsn", _text(16), nullable=False),
        sa.Column("code", sa.SmallInteger()),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("reason", _text(24), nullable=False),
        sa.Column("reply", sa.Text()),
        sa.Column("qkey", sa.BigInteger(), nullable=False),
    ]


def _rebuild(new_table: list[sa.Column[object] | sa.Constraint], order: str) -> None:
    """Copy rep_attempts into a table of the given shape, in ``order``; then its indexes."""
    op.drop_index("ix_rep_attempts_day", table_name="rep_attempts")
    op.drop_index("ix_rep_attempts_queue", table_name="rep_attempts")
    op.rename_table("rep_attempts", "rep_attempts_old")
    if op.get_bind().dialect.name == "postgresql":  # constraint names are the schema's
        op.execute("ALTER TABLE rep_attempts_old DROP CONSTRAINT IF EXISTS pk_rep_attempts")
        op.execute("ALTER TABLE rep_attempts_old DROP CONSTRAINT IF EXISTS uq_rep_attempts_fp")
    op.create_table("rep_attempts", *new_table)
    op.execute(
        f"INSERT INTO rep_attempts ({_COLUMNS}) SELECT {_COLUMNS} FROM rep_attempts_old "
        f"ORDER BY {order}"
    )
    op.drop_table("rep_attempts_old")
    op.create_index("ix_rep_attempts_day", "rep_attempts", ["day"])
    op.create_index("ix_rep_attempts_queue", "rep_attempts", ["qkey", "rkey"])


def _key(name: str, *, autoincrement: bool) -> sa.Column[object]:
    """The table's key column: INTEGER on SQLite (there the rowid itself)."""
    kind = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    return sa.Column(name, kind, autoincrement=autoincrement, nullable=False)


def upgrade() -> None:
    _rebuild(
        [
            _key("id", autoincrement=True),
            sa.Column("fp", sa.BigInteger(), nullable=False),
            *_attempt_columns(),
            sa.PrimaryKeyConstraint("id", name="pk_rep_attempts"),
            sa.UniqueConstraint("fp", name="uq_rep_attempts_fp"),
        ],
        "day, ts, fp",
    )


def downgrade() -> None:
    _rebuild(
        [
            _key("fp", autoincrement=False),
            *_attempt_columns(),
            sa.PrimaryKeyConstraint("fp", name="pk_rep_attempts"),
        ],
        "fp",
    )
