"""ChainHead in Spanish, where a superuser gives permissions («cabeza de la cadena», was «chain head»).
Names only: no change to the database."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0006_no_truncate_triggers"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="chainhead",
            options={"verbose_name": "cabeza de la cadena", "verbose_name_plural": "cabezas de la cadena"},
        ),
    ]
