"""Database schema and connections shared by SQLite and PostgreSQL."""
