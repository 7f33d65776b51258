"""Signatures on the audit trail (docs/security.md §2.10, G14): every event appended from now on is
signed, and so is the chain's head. The events already in the table were appended unsigned: the head
records the first `seq` that must carry a signature (after the sealed ones and the ones waiting to be
sealed, which the sealer takes first: it takes them in id order), and signs it with its present state,
so that verification does not call the past a forgery (nor accept an unsigned event from now on).
Adding the columns locks the events' table until this commits: nothing is appended meanwhile."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

GENESIS = "0" * 64


def sign_the_head(apps: Any, schema_editor: Any) -> None:
    from oficina.audit.services import head_signature

    event_model = apps.get_model("audit", "Event")
    head_model = apps.get_model("audit", "ChainHead")
    alias = schema_editor.connection.alias
    head, _ = (
        head_model.objects.using(alias)
        .select_for_update()
        .get_or_create(pk=1, defaults={"last_hash": GENESIS, "last_seq": 0})
    )
    pending = event_model.objects.using(alias).filter(seq__isnull=True).count()
    head.signed_from_seq = head.last_seq + pending + 1
    head.mac = head_signature(head.last_seq, head.last_hash, head.signed_from_seq)
    head.save(update_fields=["signed_from_seq", "mac"])


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
            name="signed_from_seq",
            field=models.BigIntegerField(default=1),
        ),
        migrations.AddField(
            model_name="event",
            name="mac",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.RunPython(sign_the_head, migrations.RunPython.noop),
    ]
