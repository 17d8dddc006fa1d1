"""Alembic environment: runs on the engine that ``inboxops.storage.db`` hands over.

SQLite alters most things by recreating a table (Alembic's batch mode). With foreign keys on,
dropping the old ``dmarc_reports`` would cascade-delete every record that points at it, and the
pragma cannot change inside a transaction: so it is switched off before the migration starts,
checked with ``foreign_key_check`` before commit, and switched back on afterwards.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from inboxops.storage.db import schema_lock
from inboxops.storage.models import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()  # end the autobegun transaction, so the pragma takes effect
    try:
        with connection.begin():
            schema_lock(connection)  # a second process waits, then finds the schema current
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                broken = connection.execute(text("PRAGMA foreign_key_check")).first()
                if broken is not None:
                    raise RuntimeError(f"migration left a dangling foreign key: {tuple(broken)}")
    finally:
        if sqlite:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
