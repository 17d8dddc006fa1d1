"""alert state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Remembers when each alert (kind, ip) was last sent, so repeats follow repeat_hours.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_state",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("first_sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "ip", name=op.f("pk_alert_state")),
    )


def downgrade() -> None:
    op.drop_table("alert_state")
