"""The consent ledger's indexes: its ordering (accepted_at DESC, id DESC) read backwards, so the back
office's list reads a page instead of sorting every consent, and the same within one policy version
(the list filtered by version) (docs/performance.md, "Queries outside the sign-in"). Built
CONCURRENTLY on PostgreSQL (oficina/lib/indexes.py): sign-ins keep recording consents while they
build."""

from django.db import migrations, models

from oficina.lib.indexes import index_add, index_remove

INDEXES = [
    models.Index(fields=["accepted_at", "id"], name="consent_accepted_at_id"),
    models.Index(fields=["policy", "accepted_at", "id"], name="consent_policy_accepted_id"),
]


def forwards(apps, schema_editor):
    for index in INDEXES:
        index_add(schema_editor, apps.get_model("consent", "Consent"), index)


def backwards(apps, schema_editor):
    for index in INDEXES:
        index_remove(schema_editor, apps.get_model("consent", "Consent"), index)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("consent", "0005_datarequest_extension"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="consent", index=index) for index in INDEXES],
            database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
        ),
    ]
