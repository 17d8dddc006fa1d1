"""Storage: one SQLAlchemy engine (embedded SQLite or PostgreSQL by URL), schema by Alembic."""
