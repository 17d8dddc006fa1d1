"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24

The whole first schema: DMARC aggregate, TLS and failure reports, and the quarantine.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dmarc_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_name", sa.String(length=255), nullable=False),
        sa.Column("report_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("extra_contact_info", sa.Text(), nullable=True),
        sa.Column("begin_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.String(length=16), nullable=True),
        sa.Column("generator", sa.Text(), nullable=True),
        sa.Column("domain", sa.String(length=255), nullable=True),
        sa.Column("adkim", sa.String(length=8), nullable=True),
        sa.Column("aspf", sa.String(length=8), nullable=True),
        sa.Column("p", sa.String(length=16), nullable=True),
        sa.Column("sp", sa.String(length=16), nullable=True),
        sa.Column("np", sa.String(length=16), nullable=True),
        sa.Column("pct", sa.Integer(), nullable=True),
        sa.Column("fo", sa.String(length=32), nullable=True),
        sa.Column("testing", sa.String(length=8), nullable=True),
        sa.Column("discovery_method", sa.String(length=32), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("message_count", sa.BigInteger(), nullable=False),
        sa.Column("dropped_records", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmarc_reports")),
        sa.UniqueConstraint("org_name", "report_id", name="uq_dmarc_reports_org_report"),
    )
    with op.batch_alter_table("dmarc_reports", schema=None) as batch_op:
        batch_op.create_index("ix_dmarc_reports_begin_at", ["begin_at"], unique=False)
        batch_op.create_index("ix_dmarc_reports_domain", ["domain"], unique=False)

    op.create_table(
        "failure_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("feedback_type", sa.String(length=32), nullable=True),
        sa.Column("arrival_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_ip", sa.String(length=45), nullable=True),
        sa.Column("reported_domain", sa.String(length=255), nullable=True),
        sa.Column("original_mail_from", sa.String(length=320), nullable=True),
        sa.Column("original_rcpt_to", sa.Text(), nullable=True),
        sa.Column("auth_failure", sa.String(length=64), nullable=True),
        sa.Column("delivery_result", sa.String(length=32), nullable=True),
        sa.Column("dkim_domain", sa.String(length=255), nullable=True),
        sa.Column("identity_alignment", sa.String(length=64), nullable=True),
        sa.Column("authentication_results", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.Column("reporter", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("original_headers", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failure_reports")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_failure_reports_fingerprint")),
    )
    with op.batch_alter_table("failure_reports", schema=None) as batch_op:
        batch_op.create_index("ix_failure_reports_source_ip", ["source_ip"], unique=False)

    op.create_table(
        "quarantine",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
        sa.UniqueConstraint("sha256", name=op.f("uq_quarantine_sha256")),
    )
    op.create_table(
        "tls_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_name", sa.String(length=255), nullable=False),
        sa.Column("report_id", sa.String(length=255), nullable=False),
        sa.Column("begin_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("contact_info", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tls_reports")),
        sa.UniqueConstraint("org_name", "report_id", name="uq_tls_reports_org_report"),
    )
    op.create_table(
        "dmarc_records",
        sa.Column(
            "report_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("source_ip", sa.String(length=45), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("disposition", sa.String(length=16), nullable=True),
        sa.Column("policy_dkim", sa.String(length=16), nullable=True),
        sa.Column("policy_spf", sa.String(length=16), nullable=True),
        sa.Column("header_from", sa.String(length=255), nullable=True),
        sa.Column("envelope_from", sa.String(length=255), nullable=True),
        sa.Column("envelope_to", sa.String(length=255), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=True),
        sa.Column("dkim_aligned", sa.Boolean(), nullable=False),
        sa.Column("spf_aligned", sa.Boolean(), nullable=False),
        sa.Column("dmarc_pass", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_pk"],
            ["dmarc_reports.id"],
            name=op.f("fk_dmarc_records_report_pk_dmarc_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("report_pk", "seq", name=op.f("pk_dmarc_records")),
    )
    with op.batch_alter_table("dmarc_records", schema=None) as batch_op:
        batch_op.create_index("ix_dmarc_records_source_ip", ["source_ip"], unique=False)

    op.create_table(
        "tls_policies",
        sa.Column(
            "report_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("policy_type", sa.String(length=32), nullable=False),
        sa.Column("policy_domain", sa.String(length=255), nullable=False),
        sa.Column("policy_strings", sa.JSON(), nullable=False),
        sa.Column("mx_hosts", sa.JSON(), nullable=False),
        sa.Column("successful_sessions", sa.BigInteger(), nullable=False),
        sa.Column("failed_sessions", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_pk"],
            ["tls_reports.id"],
            name=op.f("fk_tls_policies_report_pk_tls_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("report_pk", "seq", name=op.f("pk_tls_policies")),
    )
    op.create_table(
        "dmarc_auth_results",
        sa.Column(
            "report_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("record_seq", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("selector", sa.String(length=255), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=True),
        sa.Column("human_result", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint(
            "report_pk", "record_seq", "seq", name=op.f("pk_dmarc_auth_results")
        ),
    )
    op.create_table(
        "tls_failures",
        sa.Column(
            "report_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("policy_seq", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("result_type", sa.String(length=64), nullable=False),
        sa.Column("failed_session_count", sa.BigInteger(), nullable=False),
        sa.Column("sending_mta_ip", sa.String(length=45), nullable=True),
        sa.Column("receiving_ip", sa.String(length=45), nullable=True),
        sa.Column("receiving_mx_hostname", sa.String(length=255), nullable=True),
        sa.Column("receiving_mx_helo", sa.String(length=255), nullable=True),
        sa.Column("failure_reason_code", sa.Text(), nullable=True),
        sa.Column("additional_information", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["report_pk", "policy_seq"],
            ["tls_policies.report_pk", "tls_policies.seq"],
            name="fk_tls_failures_policy",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("report_pk", "policy_seq", "seq", name=op.f("pk_tls_failures")),
    )


def downgrade() -> None:
    op.drop_table("tls_failures")
    op.drop_table("dmarc_auth_results")
    op.drop_table("tls_policies")
    with op.batch_alter_table("dmarc_records", schema=None) as batch_op:
        batch_op.drop_index("ix_dmarc_records_source_ip")

    op.drop_table("dmarc_records")
    op.drop_table("tls_reports")
    op.drop_table("quarantine")
    with op.batch_alter_table("failure_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_failure_reports_source_ip")

    op.drop_table("failure_reports")
    with op.batch_alter_table("dmarc_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_dmarc_reports_domain")
        batch_op.drop_index("ix_dmarc_reports_begin_at")

    op.drop_table("dmarc_reports")
