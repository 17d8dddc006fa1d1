"""list hygiene: the removals log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10

``list_removals``: every subscriber `inboxops listmonk scrub` blocklisted (the exclusion rule
that matched) and every subscription `inboxops listmonk prune` unsubscribed (the domain's old
and new operator, the MX host), with when and on which listmonk instance.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "list_removals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("instance", sa.String(length=64), nullable=False),
        sa.Column("subscriber_id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=300)),
        sa.Column("list_id", sa.BigInteger()),
        sa.Column("list_name", sa.Text()),
        sa.Column("old_operator", sa.String(length=96)),
        sa.Column("new_operator", sa.String(length=96)),
        sa.Column("mx_host", sa.String(length=255)),
        sa.PrimaryKeyConstraint("id", name="pk_list_removals"),
    )
    op.create_index("ix_list_removals_at", "list_removals", ["at"])
    op.create_index("ix_list_removals_instance", "list_removals", ["instance", "subscriber_id"])


def downgrade() -> None:
    op.drop_table("list_removals")
