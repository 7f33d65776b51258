"""The migrations' SQL that only PostgreSQL runs: the triggers that keep the audit trail append-only,
the consent ledger insert-only and the data requests written once (audit 0005 and 0006, consent 0007
and 0008). SQLite has no roles to guard against, and these migrations do nothing there. Imported by
migrations: keep its behaviour stable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def on_postgresql(statements: Sequence[str]) -> Callable[[Any, Any], None]:
    """A RunPython function that executes `statements` in order on PostgreSQL, and nothing elsewhere.
    Without parameters, so that the `%` of RAISE's format reaches PostgreSQL as written."""

    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)

    return run
