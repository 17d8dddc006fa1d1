"""Storage: one SQLAlchemy engine (SQLite embedded by default, PostgreSQL by URL), schema by Alembic."""
