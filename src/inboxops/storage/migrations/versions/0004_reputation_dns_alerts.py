"""reputation monitor, DNS cache, MX history; alert state for every capability

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

* ``dns_cache`` and ``mx_history``: the one DNS layer's TTL cache and each domain's operator
  history, shared by reputation, list hygiene and DMARC enrichment.
* ``rep_attempts``, ``rep_recipients``, ``rep_expiries``, ``rep_notices``, ``rep_daily``,
  ``rep_dirty_days``, ``rep_health_runs``: the Postfix reputation monitor.
* ``alert_state`` becomes (kind, key, magnitude) so every capability shares it; existing DMARC
  rows keep their meaning (key = the IP, magnitude = failing messages).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _text(n: int | None = None) -> sa.types.TypeEngine[str]:
    return sa.String(length=n) if n else sa.Text()


def upgrade() -> None:
    with op.batch_alter_table("alert_state") as batch:
        batch.alter_column(
            "ip", new_column_name="key", type_=sa.String(255), existing_type=sa.String(45)
        )
        batch.alter_column(
            "last_failed", new_column_name="magnitude", existing_type=sa.BigInteger()
        )

    op.create_table(
        "dns_cache",
        sa.Column("name", _text(255), nullable=False),
        sa.Column("rdtype", _text(8), nullable=False),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("ttl", sa.Integer()),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "rdtype", name="pk_dns_cache"),
    )
    op.create_table(
        "mx_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("domain", _text(255), nullable=False),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("operator", _text(32)),
        sa.Column("segment", _text(32)),
        sa.Column("mx_host", _text(255)),
        sa.Column("mx_hosts", sa.JSON(), nullable=False),
        sa.Column("source", _text(16), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mx_history"),
    )
    op.create_index("ix_mx_history_domain", "mx_history", ["domain", "first_seen"])
    op.create_index("ix_mx_history_first_seen", "mx_history", ["first_seen"])

    op.create_table(
        "rep_attempts",
        sa.Column(
            "fp",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
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
        sa.PrimaryKeyConstraint("fp", name="pk_rep_attempts"),
    )
    op.create_index("ix_rep_attempts_day", "rep_attempts", ["day"])
    op.create_index("ix_rep_attempts_rkey", "rep_attempts", ["rkey"])

    op.create_table(
        "rep_recipients",
        sa.Column("rkey", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("scope", _text(255), nullable=False),
        sa.Column("queue_id", _text(32), nullable=False),
        sa.Column("domain", _text(255), nullable=False),
        sa.Column("syslog_name", _text(255), nullable=False),
        sa.Column("operator", _text(32), nullable=False),
        sa.Column("segment", _text(32), nullable=False),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("last_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("final_day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("rkey", name="pk_rep_recipients"),
    )
    op.create_index("ix_rep_recipients_queue", "rep_recipients", ["scope", "queue_id"])
    op.create_index("ix_rep_recipients_final_day", "rep_recipients", ["final_day"])

    op.create_table(
        "rep_expiries",
        sa.Column("scope", _text(255), nullable=False),
        sa.Column("queue_id", _text(32), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "queue_id", "ts", name="pk_rep_expiries"),
    )
    op.create_table(
        "rep_dirty_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_rep_dirty_days"),
    )
    op.create_table(
        "rep_notices",
        sa.Column("scope", _text(255), nullable=False),
        sa.Column("queue_id", _text(32), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "queue_id", name="pk_rep_notices"),
    )
    counters = [
        "attempts",
        "recipients",
        "delivered",
        "bounced",
        "expired",
        "pending",
        "deferrals",
        "throttled",
        "policy_blocked",
        "policy_blocked_550_571",
        "auth_failures",
        "user_unknown",
        "mailbox_full",
        "greeting_blocks",
        "connection_failures",
        "dns_failures",
    ]
    op.create_table(
        "rep_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("syslog_name", _text(255), nullable=False),
        sa.Column("operator", _text(32), nullable=False),
        sa.Column("segment", _text(32), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in counters),
        sa.PrimaryKeyConstraint("day", "syslog_name", "operator", "segment", name="pk_rep_daily"),
    )
    op.create_table(
        "rep_health_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("pool", _text(64), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("bounced", sa.Integer(), nullable=False),
        sa.Column("expired", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("delivery_rate", sa.Float()),
        sa.Column("policy_blocked", sa.Integer(), nullable=False),
        sa.Column("policy_blocked_550_571", sa.Integer(), nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("alerts", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rep_health_runs"),
    )
    op.create_index("ix_rep_health_runs_day", "rep_health_runs", ["day"])


def downgrade() -> None:
    for name in (
        "rep_health_runs",
        "rep_daily",
        "rep_notices",
        "rep_dirty_days",
        "rep_expiries",
        "rep_recipients",
        "rep_attempts",
        "mx_history",
        "dns_cache",
    ):
        op.drop_table(name)
    with op.batch_alter_table("alert_state") as batch:
        batch.alter_column(
            "magnitude", new_column_name="last_failed", existing_type=sa.BigInteger()
        )
        batch.alter_column(
            "key", new_column_name="ip", type_=sa.String(45), existing_type=sa.String(255)
        )
