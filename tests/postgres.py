"""Helpers for the PostgreSQL-only tests that interleave transactions."""

from __future__ import annotations

from django.db import connections


def a_statement_waits_for_a_row_lock() -> bool:
    """Whether some statement in this test database is waiting on a lock (a row another transaction
    holds), read on this thread's own connection."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else read once per transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0
