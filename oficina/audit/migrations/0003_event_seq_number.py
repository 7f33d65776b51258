"""Numbers the events chained before 0002 (by id, at append time): `seq` 1..N in id order, the order
their hashes were computed in, and N in the head, so the sealer continues after them.

Not atomic, in batches: each batch commits on its own, so the instances still running the previous
version keep appending (and members keep signing in) while a large table is numbered. The previous
version appends under the head lock, so its ids commit in order and a batch never skips one. Run
again after an interruption, it continues where it stopped."""

from typing import Any

from django.db import migrations, models, transaction

BATCH = 10_000


def number_existing_events(apps: Any, schema_editor: Any) -> None:
    Event = apps.get_model("audit", "Event")
    ChainHead = apps.get_model("audit", "ChainHead")
    connection = schema_editor.connection
    table = schema_editor.quote_name(Event._meta.db_table)
    last_seq = Event.objects.aggregate(last=models.Max("seq"))["last"] or 0
    last_id = Event.objects.filter(seq=last_seq).values_list("id", flat=True).first() or 0
    while True:
        pending = Event.objects.filter(seq__isnull=True, id__gt=last_id).order_by("id")
        ids = list(pending.values_list("id", flat=True)[:BATCH])
        if not ids:
            break
        numbers = list(range(last_seq + 1, last_seq + 1 + len(ids)))
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"UPDATE {table} AS e SET seq = n.seq "  # noqa: S608 (the table name is ours)
                    "FROM unnest(%s::bigint[], %s::bigint[]) AS n(id, seq) WHERE e.id = n.id",
                    [ids, numbers],
                )
            else:
                cursor.executemany(
                    f"UPDATE {table} SET seq = %s WHERE id = %s",  # noqa: S608
                    list(zip(numbers, ids, strict=True)),
                )
        last_seq, last_id = numbers[-1], ids[-1]
    if not last_seq:
        return
    if not ChainHead.objects.filter(pk=1).update(last_seq=last_seq):
        newest = Event.objects.get(seq=last_seq).hash
        ChainHead.objects.create(pk=1, last_seq=last_seq, last_hash=newest)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("audit", "0002_event_seq_sealing"),
    ]

    operations = [
        # Reversing needs nothing: 0002's reversal drops the column.
        migrations.RunPython(number_existing_events, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                condition=models.Q(("seq__isnull", True)), fields=["id"], name="audit_event_unsealed"
            ),
        ),
    ]
