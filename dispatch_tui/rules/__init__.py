"""The pure rules of dispatch: the ground floor every other layer stands on.

Enums, errors, the views that cross into the UI, the lifecycle, validation limits, permissions,
recommendation and destination ranking, the norms, and the typed commands with their grammar.
Standard library only: no SQLAlchemy, psycopg or Textual (an import-linter contract holds it).
"""
