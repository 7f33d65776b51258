"""Signatures on the audit trail (docs/security.md §2.10, G14): every event appended from now on is
signed, and so is the chain's head. The events already in the table were appended unsigned: the head
records the first id that must carry a signature, and signs its present state, so that verification
does not call the past a forgery (nor accept an unsigned event from now on)."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models
from django.db.models import Max

GENESIS = "0" * 64


def sign_the_head(apps: Any, schema_editor: Any) -> None:
    from oficina.audit.services import head_signature

    event_model = apps.get_model("audit", "Event")
    head_model = apps.get_model("audit", "ChainHead")
    alias = schema_editor.connection.alias
    last_id = event_model.objects.using(alias).aggregate(last=Max("id"))["last"] or 0
    head, _ = head_model.objects.using(alias).get_or_create(
        pk=1, defaults={"last_hash": GENESIS, "last_seq": 0}
    )
    head.signed_from_id = last_id + 1
    head.mac = head_signature(head.last_seq, head.last_hash)
    head.save(update_fields=["signed_from_id", "mac"])


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_event_seq_number"),
    ]

    operations = [
        migrations.AddField(
            model_name="chainhead",
            name="mac",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="chainhead",
            name="signed_from_id",
            field=models.BigIntegerField(default=1),
        ),
        migrations.AddField(
            model_name="event",
            name="mac",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.RunPython(sign_the_head, migrations.RunPython.noop),
    ]
