"""Indexes added to big tables by a migration while the previous version keeps running.

`CREATE INDEX` holds a lock that blocks every write to the table until the index is built: on the
1,200,000 consents of docs/performance.md a few seconds, during which every sign-in that records a
consent would wait. On PostgreSQL these indexes are built CONCURRENTLY (writes go on; the migration
must be `atomic = False`); elsewhere (SQLite, the embedded default) with the schema editor, as Django
would.
"""

from __future__ import annotations

from django.db import models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor as Editor


def _drop_if_invalid(schema_editor: Editor, name: str) -> None:
    """A concurrent build that failed (interrupted, a deadlock) leaves an INVALID index behind, which
    `IF NOT EXISTS` would then keep for ever: dropped, so the migration, run again, builds it anew."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND c.relnamespace = to_regnamespace(current_schema())::oid",
            [name],
        )
        row = cursor.fetchone()
    if row and row[0]:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")


def index_add(schema_editor: Editor, model: type[models.Model], index: models.Index) -> None:
    """The model's `index` (as in its Meta.indexes): concurrently on PostgreSQL."""
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.add_index(model, index)
        return
    assert index.name
    _drop_if_invalid(schema_editor, index.name)
    sql = str(index.create_sql(model, schema_editor, concurrently=True))
    schema_editor.execute(
        sql.replace("CREATE INDEX CONCURRENTLY", "CREATE INDEX CONCURRENTLY IF NOT EXISTS", 1)
    )


def index_remove(schema_editor: Editor, model: type[models.Model], index: models.Index) -> None:
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.remove_index(model, index)
        return
    assert index.name
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(index.name)}")
