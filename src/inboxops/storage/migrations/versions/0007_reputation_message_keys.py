"""reputation: attempts know their message; only deferred recipients keep a row

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

``rep_attempts.qkey``: a digest of the attempt's host, instance and queue id, indexed with
``rkey``. A notice now finds the attempts of its message through it, so ``rep_recipients`` no
longer needs a row for every recipient: a sent or bounced attempt counts its recipient's final
outcome itself, and only recipients that were ever deferred are followed there. The rows of
recipients whose last attempt was sent or bounced are dropped here; the figures do not change.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_CHUNK = 5_000


def _queue_digest(scope: str, queue_id: str) -> int:
    """``inboxops.reputation.collect.queue_digest`` as of this revision (a migration must not
    change meaning if that function ever does)."""
    raw = hashlib.blake2b(f"{scope} {queue_id}".encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(raw.digest(), "big", signed=True)


def upgrade() -> None:
    op.add_column("rep_attempts", sa.Column("qkey", sa.BigInteger(), nullable=True))
    conn = op.get_bind()
    # Every stored attempt's recipient has a row (until this revision): its queue is there.
    # The keys go to a temporary table and the attempts take theirs in one pass (an UPDATE
    # per recipient took 3 s for 100,000 of them).
    conn.execute(sa.text("CREATE TEMPORARY TABLE rep_qkeys (rkey BIGINT PRIMARY KEY, qkey BIGINT)"))
    recipients = conn.execute(sa.text("SELECT rkey, scope, queue_id FROM rep_recipients"))
    insert = sa.text("INSERT INTO rep_qkeys (rkey, qkey) VALUES (:rkey, :qkey)")
    while chunk := recipients.fetchmany(_CHUNK):
        conn.execute(insert, [{"rkey": rkey, "qkey": _queue_digest(s, q)} for rkey, s, q in chunk])
    conn.execute(
        sa.text(
            "UPDATE rep_attempts SET qkey = k.qkey FROM rep_qkeys k "
            "WHERE k.rkey = rep_attempts.rkey"
        )
    )
    conn.execute(sa.text("DROP TABLE rep_qkeys"))
    conn.execute(sa.text("UPDATE rep_attempts SET qkey = 0 WHERE qkey IS NULL"))  # none expected
    with op.batch_alter_table("rep_attempts") as batch:
        batch.alter_column("qkey", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_index("ix_rep_attempts_rkey")
        batch.create_index("ix_rep_attempts_queue", ["qkey", "rkey"])
    conn.execute(sa.text("DELETE FROM rep_recipients WHERE status IN ('sent', 'bounced')"))


def downgrade() -> None:
    # Each dropped row comes back from its recipient's latest attempt. Its queue is not known
    # any more (attempts never kept it): a later notice cannot retract those recipients.
    with op.batch_alter_table("rep_attempts") as batch:
        batch.drop_index("ix_rep_attempts_queue")
        batch.create_index("ix_rep_attempts_rkey", ["rkey"])
    op.get_bind().execute(
        sa.text(
            "INSERT INTO rep_recipients (rkey, scope, queue_id, domain, syslog_name, operator, "
            "segment, status, last_ts, final_day) "
            "SELECT a.rkey, '', '', a.domain, a.syslog_name, a.operator, a.segment, a.status, "
            "a.ts, a.day FROM rep_attempts a WHERE a.status IN ('sent', 'bounced') "
            "AND NOT EXISTS (SELECT 1 FROM rep_recipients r WHERE r.rkey = a.rkey) "
            "AND NOT EXISTS (SELECT 1 FROM rep_attempts b WHERE b.rkey = a.rkey "
            "AND (b.ts > a.ts OR (b.ts = a.ts AND b.fp > a.fp)))"
        )
    )
    with op.batch_alter_table("rep_attempts") as batch:
        batch.drop_column("qkey")
