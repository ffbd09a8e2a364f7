"""Storage: tables, engine and sessions, migrations and the embedded PostgreSQL server."""
