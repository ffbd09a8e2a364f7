"""Alembic migrations of the dispatch schema (applied with `dispatch-tui db upgrade`)."""
