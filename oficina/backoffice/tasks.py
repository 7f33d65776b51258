from __future__ import annotations

from django_tasks import task

from oficina.backoffice.imports import member_import_run


@task(queue_name="imports")
def import_members_task(import_id: int) -> str:
    return member_import_run(import_id=import_id)
