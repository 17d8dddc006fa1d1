"""reputation: the retention horizon

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

``rep_horizon``: the first day `inboxops reputation prune` kept. Days before it are closed:
their attempts are gone, their rollup stays, and an ingest skips attempts that fall on them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rep_horizon",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rep_horizon"),
    )


def downgrade() -> None:
    op.drop_table("rep_horizon")
