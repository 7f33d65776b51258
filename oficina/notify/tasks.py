from __future__ import annotations

from django_tasks import task

from oficina.notify.outbox import outbox_deliver, outbox_deliver_many


@task(queue_name="outbox")
def deliver_outbox_message(message_id: int) -> str:
    return str(outbox_deliver(message_id=message_id))


@task(queue_name="outbox")
def deliver_outbox_messages(message_ids: list[int]) -> str:
    """Many messages in one task (see `outbox_dispatch`): one task row for a batch of notices."""
    return outbox_deliver_many(message_ids=message_ids)
