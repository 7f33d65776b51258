"""Member.session_key (a live session's id, in clear) becomes Member.session_digest (its SHA-256).

The ids already stored are digested in place, so the members signed in at the upgrade stay signed in."""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import migrations, models


def digest_stored_ids(apps: Any, schema_editor: Any) -> None:
    Member = apps.get_model("members", "Member")
    for pk, key in Member.objects.exclude(session_digest="").values_list("pk", "session_digest").iterator():
        digest = hashlib.sha256(key.encode()).hexdigest()
        Member.objects.filter(pk=pk, session_digest=key).update(session_digest=digest)


class Migration(migrations.Migration):
    dependencies = [("members", "0002_member_session_and_self_block")]

    operations = [
        migrations.RenameField("member", "session_key", "session_digest"),
        migrations.AlterField(
            "member", "session_digest", models.CharField(max_length=64, blank=True, editable=False)
        ),
        # Reversing leaves the digests: sessions then count as replaced, and members sign in again.
        migrations.RunPython(digest_stored_ids, migrations.RunPython.noop, elidable=True),
    ]
