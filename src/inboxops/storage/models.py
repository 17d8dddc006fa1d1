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
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    UniqueConstraint,
)

from inboxops.storage.types import CleanJSON, CleanString, CleanText

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

# What each alert last told the operator, for every capability (inboxops.alerts): an hourly
# cron repeats an alert only when it is due again (repeat_hours) or its magnitude doubled, and
# an alert that clears gets one "resolved" line. ``key`` names what the alert is about (an IP,
# "IP operator", a pool); ``magnitude`` is what doubling is measured on (failures, blocks).
alert_state = Table(
    "alert_state",
    metadata,
    Column("kind", Str(32), primary_key=True),
    Column("key", Str(255), primary_key=True),
    Column("first_sent_at", DateTime(timezone=True), nullable=False),
    Column("last_sent_at", DateTime(timezone=True), nullable=False),
    Column("magnitude", BigInteger, nullable=False),
)

# -- shared: DNS answers and MX history ------------------------------------------------------

# The one DNS cache (inboxops.dns.cache): answers with their TTL, negative ones included, so a
# rerun and every capability (reputation, list hygiene, DMARC enrichment) share lookups.
dns_cache = Table(
    "dns_cache",
    metadata,
    Column("name", Str(255), primary_key=True),  # lower-case, no trailing dot (IDNA)
    Column("rdtype", Str(8), primary_key=True),  # MX, PTR, A, AAAA, TXT, FCRDNS...
    Column("status", Str(16), nullable=False),  # inboxops.dns.Status
    Column("answer", Json(), nullable=False),  # records as JSON (MX: [[pref, host], ...])
    Column("ttl", Integer),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Which operator receives a domain's mail, and when that changed: one row per period during
# which the classification stayed the same (cox.net: cloudmark until 2024-10, then yahoo).
mx_history = Table(
    "mx_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("domain", Str(255), nullable=False),
    Column("status", Str(16), nullable=False),  # ok | null_mx | nxdomain | no_mx ...
    Column("operator", Str(32)),
    Column("segment", Str(32)),
    Column("mx_host", Str(255)),  # the host that decided
    Column("mx_hosts", Json(), nullable=False),
    Column("source", Str(16), nullable=False),  # dns | import
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Index("ix_mx_history_domain", "domain", "first_seen"),
    Index("ix_mx_history_first_seen", "first_seen"),
)

# -- reputation: delivery attempts from Postfix logs -----------------------------------------

# One row per delivery attempt to an external recipient. ``fp`` (a 64-bit digest of the log
# line) makes ingestion idempotent across reruns and overlapping logs; ``rkey`` (a digest of
# host, instance, queue id and recipient) ties a recipient's retries together, ``qkey`` (of host,
# instance and queue id) a message's attempts. Addresses are not kept: the domain and the
# digests are enough for every figure. A sent or bounced attempt counts its recipient's final
# outcome itself; only recipients that were ever deferred need a row in ``rep_recipients``.
rep_attempts = Table(
    "rep_attempts",
    metadata,
    # Rows are numbered as they arrive (on SQLite the rowid), so an ingest appends to the table
    # instead of writing into pages all over it: keyed by the line digest (random), every
    # transaction rewrote most of the table's pages. The digest keeps each line once.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fp", BigInteger, nullable=False, unique=True),  # the log line's digest
    Column("rkey", BigInteger, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("day", Date, nullable=False),  # UTC
    Column("syslog_name", Str(255), nullable=False),
    Column("domain", Str(255), nullable=False),
    Column("operator", Str(32), nullable=False),
    Column("segment", Str(32), nullable=False),  # "" when the operator has none
    Column("relay_host", Str(255)),
    Column("dsn", Str(16), nullable=False),
    Column("code", SmallInteger),  # the SMTP reply code, when the reply has one
    Column("status", Str(16), nullable=False),  # sent | deferred | bounced
    Column("reason", Str(24), nullable=False),
    Column("reply", Txt()),  # kept for attempts that were not accepted
    Column("qkey", BigInteger, nullable=False),
    Index("ix_rep_attempts_day", "day"),
    # a message's attempts (notices retract them), and a recipient's within it
    Index("ix_rep_attempts_queue", "qkey", "rkey"),
)

# Where each recipient that was ever deferred stands: its last attempt (or its message's expiry)
# decides whether it is still pending or expired, and the day, sending identity and operator
# it counts for. Recipients delivered or bounced at once have no row.
rep_recipients = Table(
    "rep_recipients",
    metadata,
    Column("rkey", BigInteger, primary_key=True, autoincrement=False),
    Column("scope", Str(255), nullable=False),  # host/instance: where the queue id is unique
    Column("queue_id", Str(32), nullable=False),
    Column("domain", Str(255), nullable=False),
    Column("syslog_name", Str(255), nullable=False),
    Column("operator", Str(32), nullable=False),
    Column("segment", Str(32), nullable=False),
    Column("status", Str(16), nullable=False),  # sent | deferred | bounced | expired
    Column("last_ts", DateTime(timezone=True), nullable=False),
    Column("final_day", Date, nullable=False),
    Index("ix_rep_recipients_queue", "scope", "queue_id"),
    Index("ix_rep_recipients_final_day", "final_day"),
)

# qmgr "status=expired": kept so an expiry applies whatever order the logs arrive in.
rep_expiries = Table(
    "rep_expiries",
    metadata,
    Column("scope", Str(255), primary_key=True),
    Column("queue_id", Str(32), primary_key=True),
    Column("ts", DateTime(timezone=True), primary_key=True),
    Column("day", Date, nullable=False),
)

# Days whose rollup must be rebuilt: written with each batch of attempts and cleared in the
# transaction that rebuilds them, so a run killed between the two leaves nothing stale.
rep_dirty_days = Table(
    "rep_dirty_days",
    metadata,
    Column("day", Date, primary_key=True),
)

# Messages that are notifications (from=<> or named by a bounce/defer/trace line), remembered
# across files: their delivery attempts are not campaign mail.
rep_notices = Table(
    "rep_notices",
    metadata,
    Column("scope", Str(255), primary_key=True),
    Column("queue_id", Str(32), primary_key=True),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)

# The daily rollup every report reads: day x syslog name x operator. Rebuilt for the days an
# ingest touched; the sending IP is looked up from [reputation.senders] when read, so fixing
# that map fixes history too.
rep_daily = Table(
    "rep_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("syslog_name", Str(255), primary_key=True),
    Column("operator", Str(32), primary_key=True),
    Column("segment", Str(32), primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("recipients", Integer, nullable=False),
    Column("delivered", Integer, nullable=False),
    Column("bounced", Integer, nullable=False),
    Column("expired", Integer, nullable=False),
    Column("pending", Integer, nullable=False),
    Column("deferrals", Integer, nullable=False),
    Column("throttled", Integer, nullable=False),
    Column("policy_blocked", Integer, nullable=False),
    Column("policy_blocked_550_571", Integer, nullable=False),
    Column("auth_failures", Integer, nullable=False),
    Column("user_unknown", Integer, nullable=False),
    Column("mailbox_full", Integer, nullable=False),
    Column("greeting_blocks", Integer, nullable=False),
    Column("connection_failures", Integer, nullable=False),
    Column("dns_failures", Integer, nullable=False),
)

# The retention horizon of `inboxops reputation prune` (at most one row): attempts, recipients
# and expiries before ``first_day`` (UTC) are gone, and those days are closed: their rollup in
# ``rep_daily`` stays as it was, and an ingest skips attempts of a closed day rather than
# rebuild that day from the few it would hold. It only ever moves forward.
rep_horizon = Table(
    "rep_horizon",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),  # always 1
    Column("first_day", Date, nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
)

# Every end-of-day health check, healthy or not (`inboxops health history`).
rep_health_runs = Table(
    "rep_health_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_at", DateTime(timezone=True), nullable=False),
    Column("day", Date, nullable=False),
    Column("pool", Str(64), nullable=False),
    Column("delivered", Integer, nullable=False),
    Column("bounced", Integer, nullable=False),
    Column("expired", Integer, nullable=False),
    Column("pending", Integer, nullable=False),
    Column("delivery_rate", Float),
    Column("policy_blocked", Integer, nullable=False),
    Column("policy_blocked_550_571", Integer, nullable=False),
    Column("healthy", Boolean, nullable=False),
    Column("alerts", Json(), nullable=False),
    Index("ix_rep_health_runs_day", "day"),
)

# -- list hygiene: what was taken off listmonk, and why ---------------------------------------

# One row per subscriber blocklisted by `inboxops listmonk scrub` (reason "excluded", ``rule``
# the exclusion rule that matched) or unsubscribed from one list by `inboxops listmonk prune`
# (reason "mx_operator", ``rule`` the excluded operator, with the domain's old and new operator
# and the MX host that decided). Written once listmonk confirmed the batch; dry runs write none.
list_removals = Table(
    "list_removals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("instance", Str(64), nullable=False),
    Column("subscriber_id", BigInteger, nullable=False),
    Column("email", Txt(), nullable=False),
    Column("domain", Txt(), nullable=False),
    Column("action", Str(16), nullable=False),  # blocklist | unsubscribe
    Column("reason", Str(32), nullable=False),  # excluded | mx_operator
    Column("rule", Str(300)),
    Column("list_id", BigInteger),  # prune: the list; scrub: NULL (blocklisting leaves every list)
    Column("list_name", Txt()),
    Column("old_operator", Str(96)),
    Column("new_operator", Str(96)),
    Column("mx_host", Str(255)),
    Index("ix_list_removals_at", "at"),
    Index("ix_list_removals_instance", "instance", "subscriber_id"),
)
