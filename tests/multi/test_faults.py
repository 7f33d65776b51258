"""Faults of SMTP, the SMS gateway, the worker and the database: nothing lost, nothing sent twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta
from unittest import mock

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.utils import timezone

from oficina.notify.models import OutboxMessage
from oficina.notify.outbox import message_queue, outbox_deliver, outbox_dispatch, outbox_sweep
from tests.factories import make_member
from tests.multi.conftest import free_port, quiet_python, suite_database_url

Status = OutboxMessage.Status


class Collector:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.mark.django_db
def test_smtp_down_then_up_delivers_the_message_once(settings):
    port = free_port()
    settings.EMAIL_BACKEND = "oficina.notify.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    member = make_member()
    message = message_queue(member=member, channel="email", template="pin_changed", context={})
    assert outbox_deliver(message_id=message.pk) == Status.RETRYING  # nothing listens: refused
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with mock.patch("django.utils.timezone.now", return_value=timezone.now() + timedelta(minutes=5)):
            assert outbox_sweep() == 1  # the retry is due: the immediate backend delivers inline
        message.refresh_from_db()
        assert message.status == Status.SENT
        assert len(collector.messages) == 1
        assert f"oficina-outbox-{message.pk}@".encode() in collector.messages[0]
        assert outbox_sweep(now=timezone.now() + timedelta(minutes=30)) == 0
    finally:
        controller.stop()


def worker_env(settings, sms_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "oficina.settings",
        "DEBUG": "0",
        "OFICINA_TESTING": "0",
        "SECRET_KEY": "faults-test-key-" + "x" * 40,
        "DATABASE_URL": suite_database_url(settings),
        "TASKS_BACKEND": "database",
        "SMS_BACKEND": "http",
        "SMS_HTTP_URL": sms_url,
        "SMS_HTTP_TIMEOUT": "10",
        "OUTBOX_LEASE_SECONDS": "2",
        "LOG_FORMAT": "plain",
        "LOG_LEVEL": "WARNING",
    }


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return quiet_python(
        env, "manage.py", "outbox_worker", "--interval", "0.2", "--sweep-every", "0.5", "--max-seconds", "60"
    )


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_is_replaced_and_the_member_gets_one_message(
    settings, database_tasks, sms_gateway
):
    member = make_member()
    message = message_queue(member=member, channel="sms", template="pin_changed", context={})
    outbox_dispatch([message])
    first = start_worker(worker_env(settings, sms_gateway.url("/hang")))
    try:
        assert wait_for(lambda: len(sms_gateway.requests) == 1), "the first worker never reached the gateway"
        first.send_signal(signal.SIGKILL)  # dies while the gateway holds its request
        first.wait(timeout=10)
    finally:
        first.kill()
    message.refresh_from_db()
    assert message.status == Status.SENDING
    second = start_worker(worker_env(settings, sms_gateway.url("/send")))
    try:
        assert wait_for(lambda: OutboxMessage.objects.get(pk=message.pk).status == Status.SENT)
    finally:
        second.terminate()
        second.wait(timeout=10)
    keys = [request.headers["idempotency-key"] for request in sms_gateway.requests]
    # Two hand-overs, one idempotency key: the gateway delivers it to the member once.
    assert keys == [f"oficina-outbox-{message.pk}"] * 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_worker_survives_the_database_dropping_every_connection(settings, database_tasks, sms_gateway):
    member = make_member()
    worker = start_worker(worker_env(settings, sms_gateway.url("/send")))
    try:
        time.sleep(1.5)  # the worker is connected and polling
        with connection.cursor() as cursor:  # what a restart looks like to every client: cut connections
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        message = message_queue(member=member, channel="sms", template="pin_changed", context={})
        outbox_dispatch([message])
        assert wait_for(lambda: OutboxMessage.objects.get(pk=message.pk).status == Status.SENT, timeout=40)
        assert worker.poll() is None, "the worker exited instead of reconnecting"
    finally:
        worker.terminate()
        worker.wait(timeout=10)
    assert len(sms_gateway.requests) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_stop_signal_mid_send_finishes_that_message_and_then_stops_the_worker(
    settings, database_tasks, sms_gateway
):
    member = make_member()
    message = message_queue(member=member, channel="sms", template="pin_changed", context={})
    outbox_dispatch([message])
    worker = start_worker(worker_env(settings, sms_gateway.url("/hang")))
    try:
        assert wait_for(lambda: len(sms_gateway.requests) == 1)
        worker.terminate()  # SIGTERM while the gateway holds the request
        sms_gateway.release.set()  # the gateway answers 200
        assert worker.wait(timeout=15) == 0
    finally:
        worker.kill()
    assert OutboxMessage.objects.get(pk=message.pk).status == Status.SENT


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_worker_delivers_messages_while_an_uploaded_import_runs_and_a_stop_waits_for_the_import(
    settings, database_tasks, sms_gateway
):
    """docs/security.md G21: an uploaded import is one task of tens of seconds; run in the delivery loop
    it held every temporary code and notice until it ended. Here the import is held up on a row lock
    the test keeps, and a notice queued meanwhile must still go out. A stop signal then lets the import
    in hand finish before the worker exits."""
    import psycopg

    from oficina.backoffice.models import MemberImport

    changed = make_member(document="52000001", mobile="+573001110001")
    waiting = make_member(document="52000002", mobile="+573002220002")
    job = import_queued(changed.document, "+573009990001")

    with psycopg.connect(suite_database_url(settings), autocommit=False) as holder:
        holder.execute("SELECT 1 FROM members_member WHERE id = %s FOR UPDATE", [changed.pk])
        worker = start_worker(worker_env(settings, sms_gateway.url("/send")))
        try:
            assert wait_for(lambda: import_waits_for_the_row(job, holder))
            notice = message_queue(member=waiting, channel="sms", template="pin_changed", context={})
            outbox_dispatch([notice])
            assert wait_for(lambda: OutboxMessage.objects.get(pk=notice.pk).status == Status.SENT, timeout=15)
            assert MemberImport.objects.get(pk=job.pk).status == MemberImport.Status.RUNNING

            worker.terminate()  # the import in hand finishes first
            time.sleep(0.5)
            assert worker.poll() is None
            holder.rollback()  # the row lock goes: the import goes on and commits
            assert worker.wait(timeout=20) == 0
        finally:
            worker.kill()
    job.refresh_from_db()
    changed.refresh_from_db()
    assert (job.status, job.updated) == (MemberImport.Status.DONE, 1)
    assert changed.mobile == "+573009990001"


def import_queued(document: str, mobile: str):
    """An upload of one row giving `document` a new mobile, queued for the worker's imports loop."""
    from oficina.backoffice.models import MemberImport
    from oficina.backoffice.tasks import import_members_task

    job = MemberImport.objects.create(
        file_name="asociados.csv",
        content=f"documento,nombre,celular,correo\n{document},Ana Gomez,{mobile},\n".encode(),
        total_lines=2,
    )
    import_members_task.enqueue(job.pk)
    return job


def import_waits_for_the_row(job, holder) -> bool:
    """The import has started and waits for the member's row `holder` keeps locked."""
    from oficina.backoffice.models import MemberImport

    return MemberImport.objects.get(pk=job.pk).status == MemberImport.Status.RUNNING and blocked_on_a_lock(
        holder
    )


def blocked_on_a_lock(holder) -> bool:
    """Whether some other session waits for a lock (the import's UPDATE of the row `holder` locked)."""
    row = holder.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    ).fetchone()
    return bool(row and row[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_import_whose_worker_was_killed_is_marked_failed_by_the_next_worker(
    settings, database_tasks, sms_gateway
):
    """A worker killed mid-import rolls the import back, but its status said "Importando" for ever.
    While its importer lives the import is left alone; once the process is dead, the next worker's
    imports loop marks it failed and audits it."""
    import psycopg

    from oficina.audit.models import Event
    from oficina.backoffice.imports import member_imports_abandoned_close
    from oficina.backoffice.models import MemberImport

    changed = make_member(document="52000011", mobile="+573001110011")
    job = import_queued(changed.document, "+573009990011")
    env = worker_env(settings, sms_gateway.url("/send"))

    with psycopg.connect(suite_database_url(settings), autocommit=False) as holder:
        holder.execute("SELECT 1 FROM members_member WHERE id = %s FOR UPDATE", [changed.pk])
        first = start_worker(env)
        try:
            assert wait_for(lambda: import_waits_for_the_row(job, holder))
            assert member_imports_abandoned_close() == 0  # its importer is alive
            first.kill()  # SIGKILL: no cleanup of its own
            first.wait(timeout=10)
        finally:
            first.kill()
        holder.rollback()  # the dead importer's statement goes on, fails to answer, and its session ends

    second = start_worker(env)
    try:
        assert wait_for(lambda: MemberImport.objects.get(pk=job.pk).status == MemberImport.Status.FAILED)
    finally:
        second.terminate()
        second.wait(timeout=15)
    job.refresh_from_db()
    changed.refresh_from_db()
    assert job.content == b"" and job.finished_at is not None
    assert changed.mobile == "+573001110011"  # the import rolled back: nothing half-imported
    event = Event.objects.get(kind="operator_import")
    assert event.data == {"import_id": job.pk, "failed": True, "interrupted": True}
