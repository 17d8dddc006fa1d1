"""The schema as SQLAlchemy Core tables.

Core rather than the ORM: ingestion writes tens of thousands of rows a second with
``executemany``, which the ORM's unit of work would slow several-fold. Alembic migrations under
``migrations/versions`` build exactly these tables; change both together.
"""

from __future__ import annotations

from sqlalchemy import (
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
    Table,
    UniqueConstraint,
)

from inboxops.storage.text import CleanJSON, CleanString, CleanText

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrement needs INTEGER


# Every text column goes through storage/text.py (NUL and control characters cleaned on bind);
# tests/test_storage.py fails on a String/Text/JSON column that does not use these.
def Str(length: int) -> CleanString:  # reads like the type it stands for
    return CleanString(length)


def Txt() -> CleanText:
    return CleanText()


def Json() -> CleanJSON:
    return CleanJSON()


dmarc_reports = Table(
    "dmarc_reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # sha256 of org_name NUL report_id: the idempotency key, over the full values (reporters'
    # ids can be long; a key cut at a column length would merge two reports).
    Column("report_key", Str(64), nullable=False),
    Column("org_name", Txt(), nullable=False),
    Column("report_id", Txt(), nullable=False),
    Column("email", Str(320)),
    Column("extra_contact_info", Txt()),
    Column("begin_at", DateTime(timezone=True)),
    Column("end_at", DateTime(timezone=True)),
    # The instant that decides which window a report counts in: the midpoint of its date range
    # (docs/dmarc-summary.md). Windows are half-open, so adjacent ones never share a report.
    Column("window_at", DateTime(timezone=True)),
    Column("version", Str(16)),
    Column("generator", Txt()),
    Column("domain", Str(255)),
    Column("adkim", Str(8)),
    Column("aspf", Str(8)),
    Column("p", Str(16)),
    Column("sp", Str(16)),
    Column("np", Str(16)),
    Column("pct", Integer),
    Column("fo", Str(32)),
    Column("testing", Str(8)),
    Column("discovery_method", Str(32)),
    Column("errors", Json(), nullable=False),
    Column("record_count", Integer, nullable=False),
    Column("message_count", BigInteger, nullable=False),
    Column("dropped_records", Integer, nullable=False),
    Column("source", Txt()),
    Column("sha256", Str(64), nullable=False),
    # libxml2 had to repair the XML: a cleanly parsed copy of the same report replaces it.
    Column("recovered", Boolean, nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("report_key", name="uq_dmarc_reports_report_key"),
    Index("ix_dmarc_reports_begin_at", "begin_at"),
    Index("ix_dmarc_reports_window_at", "window_at"),
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
    Column("source_ip", Str(45), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("disposition", Str(16)),
    Column("policy_dkim", Str(16)),
    Column("policy_spf", Str(16)),
    Column("header_from", Str(255)),
    Column("envelope_from", Str(255)),
    Column("envelope_to", Str(255)),
    Column("reasons", Json()),
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
    Column("method", Str(8), nullable=False),
    Column("domain", Str(255), nullable=False),
    Column("selector", Str(255)),
    Column("result", Str(16), nullable=False),
    Column("scope", Str(16)),
    Column("human_result", Txt()),
    # No foreign key on purpose: a per-row RI trigger costs PostgreSQL a third of a 100k-record
    # COPY. Auth results are only written inside their report's transaction and must be deleted
    # with it by report_pk (the primary key's first column makes that an index range).
)

tls_reports = Table(
    "tls_reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("report_key", Str(64), nullable=False),  # as dmarc_reports.report_key
    Column("org_name", Txt(), nullable=False),
    Column("report_id", Txt(), nullable=False),
    Column("begin_at", DateTime(timezone=True)),
    Column("end_at", DateTime(timezone=True)),
    Column("window_at", DateTime(timezone=True)),  # as dmarc_reports.window_at
    Column("contact_info", Txt()),
    Column("source", Txt()),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("report_key", name="uq_tls_reports_report_key"),
    Index("ix_tls_reports_window_at", "window_at"),
)

tls_policies = Table(
    "tls_policies",
    metadata,
    Column("report_pk", Id, ForeignKey("tls_reports.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("policy_type", Str(32), nullable=False),
    Column("policy_domain", Str(255), nullable=False),
    Column("policy_strings", Json(), nullable=False),
    Column("mx_hosts", Json(), nullable=False),
    Column("successful_sessions", BigInteger, nullable=False),
    Column("failed_sessions", BigInteger, nullable=False),
)

tls_failures = Table(
    "tls_failures",
    metadata,
    Column("report_pk", Id, primary_key=True),
    Column("policy_seq", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("result_type", Str(64), nullable=False),
    Column("failed_session_count", BigInteger, nullable=False),
    Column("sending_mta_ip", Str(45)),
    Column("receiving_ip", Str(45)),
    Column("receiving_mx_hostname", Str(255)),
    Column("receiving_mx_helo", Str(255)),
    Column("failure_reason_code", Txt()),
    Column("additional_information", Txt()),
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
    Column("fingerprint", Str(64), nullable=False, unique=True),
    Column("feedback_type", Str(32)),
    Column("arrival_date", DateTime(timezone=True)),
    Column("source_ip", Str(45)),
    Column("reported_domain", Str(255)),
    Column("original_mail_from", Str(320)),
    Column("original_rcpt_to", Txt()),
    Column("auth_failure", Str(64)),
    Column("delivery_result", Str(32)),
    Column("dkim_domain", Str(255)),
    Column("identity_alignment", Str(64)),
    Column("authentication_results", Txt()),
    Column("user_agent", Str(255)),
    Column("reporter", Str(320)),
    Column("subject", Txt()),
    Column("message_id", Txt()),
    Column("original_headers", Txt()),
    Column("source", Txt()),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Index("ix_failure_reports_source_ip", "source_ip"),
)

# Inputs we refused: kept with their raw bytes so nothing is lost and an operator can look.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sha256", Str(64), nullable=False, unique=True),
    Column("source", Txt(), nullable=False),
    Column("reason", Txt(), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("raw", LargeBinary),  # NULL when over the size we are willing to keep
    Column("stored_at", DateTime(timezone=True), nullable=False),
)

# What each alert last told the operator, so an hourly cron repeats an alert only when it is
# due again (``[dmarc.alerts].repeat_hours``) or has grown, instead of every hour for a week.
alert_state = Table(
    "alert_state",
    metadata,
    Column("kind", Str(32), primary_key=True),
    Column("ip", Str(45), primary_key=True),
    Column("first_sent_at", DateTime(timezone=True), nullable=False),
    Column("last_sent_at", DateTime(timezone=True), nullable=False),
    Column("last_failed", BigInteger, nullable=False),
)
