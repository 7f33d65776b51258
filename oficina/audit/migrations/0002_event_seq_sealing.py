"""Events are appended unsealed and chained later by the sealer (`audit_seal`), in `seq` order.

Schema only, and quick (no table rewrite on PostgreSQL): the numbering of the existing events is
0003, in batches."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="chainhead",
            name="last_seq",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="event",
            name="seq",
            field=models.BigIntegerField(editable=False, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name="event",
            name="hash",
            field=models.CharField(editable=False, max_length=64, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name="event",
            name="prev_hash",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
    ]
