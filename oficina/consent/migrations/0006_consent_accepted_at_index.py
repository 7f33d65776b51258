"""The consent ledger's index: its ordering (accepted_at DESC, id DESC) read backwards, so the back
office's list reads a page instead of sorting every consent (docs/performance.md, "Queries outside the
sign-in"). Built CONCURRENTLY on PostgreSQL (oficina/lib/indexes.py): sign-ins keep recording consents
while it builds."""

from django.db import migrations, models

from oficina.lib.indexes import index_add, index_remove

ACCEPTED_INDEX = models.Index(fields=["accepted_at", "id"], name="consent_accepted_at_id")


def forwards(apps, schema_editor):
    index_add(schema_editor, apps.get_model("consent", "Consent"), ACCEPTED_INDEX)


def backwards(apps, schema_editor):
    index_remove(schema_editor, apps.get_model("consent", "Consent"), ACCEPTED_INDEX)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("consent", "0005_datarequest_extension"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="consent", index=ACCEPTED_INDEX)],
            database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
        ),
    ]
