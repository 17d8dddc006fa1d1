"""The schema as SQLAlchemy Core tables.

Core rather than the ORM: ingestion writes tens of thousands of rows a second with
``executemany``, which the ORM's unit of work would slow several-fold. Alembic migrations under
``migrations/versions`` build exactly these tables; change both together.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrement needs INTEGER

dmarc_reports = Table(
    "dmarc_reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("org_name", String(255), nullable=False),
    Column("report_id", String(255), nullable=False),
    Column("email", String(320)),
    Column("extra_contact_info", Text),
    Column("begin_at", DateTime(timezone=True)),
    Column("end_at", DateTime(timezone=True)),
    Column("version", String(16)),
    Column("generator", Text),
    Column("domain", String(255)),
    Column("adkim", String(8)),
    Column("aspf", String(8)),
    Column("p", String(16)),
    Column("sp", String(16)),
    Column("np", String(16)),
    Column("pct", Integer),
    Column("fo", String(32)),
    Column("testing", String(8)),
    Column("discovery_method", String(32)),
    Column("errors", JSON, nullable=False),
    Column("record_count", Integer, nullable=False),
    Column("message_count", BigInteger, nullable=False),
    Column("dropped_records", Integer, nullable=False),
    Column("source", Text),
    Column("sha256", String(64), nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("org_name", "report_id", name="uq_dmarc_reports_org_report"),
    Index("ix_dmarc_reports_begin_at", "begin_at"),
    Index("ix_dmarc_reports_domain", "domain"),
)

# Records are keyed (report, seq) so that a batch insert needs no RETURNING round trip.
dmarc_records = Table(
    "dmarc_records",
    metadata,
    Column(
        "report_pk",
        Id,
        ForeignKey("dmarc_reports.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True),
    Column("source_ip", String(45), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("disposition", String(16)),
    Column("policy_dkim", String(16)),
    Column("policy_spf", String(16)),
    Column("header_from", String(255)),
    Column("envelope_from", String(255)),
    Column("envelope_to", String(255)),
    Column("reasons", JSON),
    Column("dkim_aligned", Boolean, nullable=False),
    Column("spf_aligned", Boolean, nullable=False),
    Column("dmarc_pass", Boolean, nullable=False),
    Index("ix_dmarc_records_source_ip", "source_ip"),
)

dmarc_auth_results = Table(
    "dmarc_auth_results",
    metadata,
    Column("report_pk", Id, primary_key=True),
    Column("record_seq", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("method", String(8), nullable=False),
    Column("domain", String(255), nullable=False),
    Column("selector", String(255)),
    Column("result", String(16), nullable=False),
    Column("scope", String(16)),
    Column("human_result", Text),
    # No foreign key on purpose: a per-row RI trigger costs PostgreSQL a third of a 100k-record
    # COPY. Auth results are only written inside their report's transaction and must be deleted
    # with it by report_pk (the primary key's first column makes that an index range).
)

tls_reports = Table(
    "tls_reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("org_name", String(255), nullable=False),
    Column("report_id", String(255), nullable=False),
    Column("begin_at", DateTime(timezone=True)),
    Column("end_at", DateTime(timezone=True)),
    Column("contact_info", Text),
    Column("source", Text),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("org_name", "report_id", name="uq_tls_reports_org_report"),
)

tls_policies = Table(
    "tls_policies",
    metadata,
    Column("report_pk", Id, ForeignKey("tls_reports.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("policy_type", String(32), nullable=False),
    Column("policy_domain", String(255), nullable=False),
    Column("policy_strings", JSON, nullable=False),
    Column("mx_hosts", JSON, nullable=False),
    Column("successful_sessions", BigInteger, nullable=False),
    Column("failed_sessions", BigInteger, nullable=False),
)

tls_failures = Table(
    "tls_failures",
    metadata,
    Column("report_pk", Id, primary_key=True),
    Column("policy_seq", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("result_type", String(64), nullable=False),
    Column("failed_session_count", BigInteger, nullable=False),
    Column("sending_mta_ip", String(45)),
    Column("receiving_ip", String(45)),
    Column("receiving_mx_hostname", String(255)),
    Column("receiving_mx_helo", String(255)),
    Column("failure_reason_code", Text),
    Column("additional_information", Text),
    ForeignKeyConstraint(
        ["report_pk", "policy_seq"],
        ["tls_policies.report_pk", "tls_policies.seq"],
        ondelete="CASCADE",
        name="fk_tls_failures_policy",
    ),
)

failure_reports = Table(
    "failure_reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("feedback_type", String(32)),
    Column("arrival_date", DateTime(timezone=True)),
    Column("source_ip", String(45)),
    Column("reported_domain", String(255)),
    Column("original_mail_from", String(320)),
    Column("original_rcpt_to", Text),
    Column("auth_failure", String(64)),
    Column("delivery_result", String(32)),
    Column("dkim_domain", String(255)),
    Column("identity_alignment", String(64)),
    Column("authentication_results", Text),
    Column("user_agent", String(255)),
    Column("reporter", String(320)),
    Column("subject", Text),
    Column("message_id", Text),
    Column("original_headers", Text),
    Column("source", Text),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Index("ix_failure_reports_source_ip", "source_ip"),
)

# Inputs we refused: kept with their raw bytes so nothing is lost and an operator can look.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("source", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("raw", LargeBinary),  # NULL when over the size we are willing to keep
    Column("stored_at", DateTime(timezone=True), nullable=False),
)

# What each alert last told the operator, so an hourly cron repeats an alert only when it is
# due again (``[dmarc.alerts].repeat_hours``) or has grown, instead of every hour for a week.
alert_state = Table(
    "alert_state",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("ip", String(45), primary_key=True),
    Column("first_sent_at", DateTime(timezone=True), nullable=False),
    Column("last_sent_at", DateTime(timezone=True), nullable=False),
    Column("last_failed", BigInteger, nullable=False),
)
