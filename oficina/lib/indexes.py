"""Indexes added to big tables by a migration while the previous version keeps running.

`CREATE INDEX` holds a lock that blocks every write to the table until the index is built: on the
million members of docs/performance.md a few seconds for a B-tree and longer for a trigram index,
during which every sign-in (an UPDATE of the member's row) would wait. On PostgreSQL these indexes are
built CONCURRENTLY (writes go on; the migration must be `atomic = False`); elsewhere (SQLite, the
embedded default) with the schema editor, as Django would.
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


def postgresql_index_add(schema_editor: Editor, name: str, definition: str) -> None:
    """An index only PostgreSQL has (a trigram GIN, say), `definition` being what follows
    `CREATE INDEX name ON`: built concurrently there, nothing elsewhere (the model does not declare it,
    so Django's migration state never sees it)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    _drop_if_invalid(schema_editor, name)
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {schema_editor.quote_name(name)} ON {definition}"
    )


def postgresql_index_remove(schema_editor: Editor, name: str) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")
