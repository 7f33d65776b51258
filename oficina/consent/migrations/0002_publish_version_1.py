"""Publishes version 1 of the data policy, filled with this cooperative's identity (COOPERATIVE_*)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.db import migrations
from django.utils import timezone


def publish(apps, schema_editor):
    from oficina.consent.services import policy_render

    PolicyVersion = apps.get_model("consent", "PolicyVersion")
    if PolicyVersion.objects.exists():
        return
    source = Path(__file__).resolve().parent.parent / "policy_texts" / "v1.html"
    text = policy_render(source.read_text(encoding="utf-8"))
    PolicyVersion.objects.create(
        version="1",
        text=text,
        text_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        published_at=timezone.now(),
    )


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_initial")]
    operations = [migrations.RunPython(publish, migrations.RunPython.noop)]
