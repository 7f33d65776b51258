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
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
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
