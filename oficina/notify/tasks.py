from __future__ import annotations

from django_tasks import task

from oficina.notify.outbox import outbox_deliver


@task(queue_name="outbox")
def deliver_outbox_message(message_id: int) -> str:
    return str(outbox_deliver(message_id=message_id))
