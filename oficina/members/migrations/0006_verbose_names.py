"""PinHistory in Spanish, where a superuser gives permissions («clave anterior», was «pin history»).
Names only: no change to the database."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0005_member_revocations_granted"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="pinhistory",
            options={
                "ordering": ["-created_at", "-id"],
                "verbose_name": "clave anterior",
                "verbose_name_plural": "claves anteriores",
            },
        ),
    ]
