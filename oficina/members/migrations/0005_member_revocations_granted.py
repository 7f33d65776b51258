"""Member.revocations_granted: the count of granted revocations on the member's own row, which the
sign-in's session write is conditioned on (docs/security.md §2.12). A default in the database too, so
the previous version, still running during the upgrade, inserts members (an import) without it."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0004_member_stepup_digest"),
    ]

    operations = [
        migrations.AddField(
            model_name="member",
            name="revocations_granted",
            field=models.PositiveIntegerField(db_default=0, default=0, editable=False),
        ),
    ]
