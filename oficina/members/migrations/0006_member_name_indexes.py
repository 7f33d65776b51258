"""The members list's indexes (docs/performance.md, "Queries outside the sign-in"): a B-tree on
(name, id DESC) for its ordering, and on PostgreSQL a trigram GIN index on UPPER(name) for the search
by part of a name (Django's `UPPER(name::text) LIKE UPPER('%…%')`). Built CONCURRENTLY on PostgreSQL
(oficina/lib/indexes.py): sign-ins keep writing members while they build, so the previous version may
keep running (docs/operations.md, "Migrations and upgrades"). pg_trgm is a trusted extension: the
database's owner may create it."""

from django.db import migrations, models

from oficina.lib.indexes import index_add, index_remove, postgresql_index_add, postgresql_index_remove

NAME_INDEX = models.Index(fields=["name", "-id"], name="member_name_id")
TRIGRAM_INDEX = "member_name_trgm"


def forwards(apps, schema_editor):
    index_add(schema_editor, apps.get_model("members", "Member"), NAME_INDEX)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    postgresql_index_add(schema_editor, TRIGRAM_INDEX, "members_member USING gin (UPPER(name) gin_trgm_ops)")


def backwards(apps, schema_editor):
    postgresql_index_remove(schema_editor, TRIGRAM_INDEX)
    index_remove(schema_editor, apps.get_model("members", "Member"), NAME_INDEX)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("members", "0005_member_revocations_granted"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="member", index=NAME_INDEX)],
            database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
        ),
    ]
