"""Alembic environment: runs on the engine that ``inboxops.storage.db`` hands over."""

from __future__ import annotations

from alembic import context

from inboxops.storage.db import schema_lock
from inboxops.storage.models import metadata

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    schema_lock(connection)  # a second process waits, then finds the schema current
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
