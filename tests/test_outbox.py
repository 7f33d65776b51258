"""Messages go through a durable outbox and a background task, with retries and no duplicates."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from oficina.audit.models import Event
from oficina.notify.models import OutboxMessage
from oficina.notify.outbox import message_queue, outbox_deliver, outbox_retry, outbox_sweep
from tests.factories import make_member

pytestmark = pytest.mark.django_db

Status = OutboxMessage.Status


def request_code(client, member, channel="sms"):
    client.post("/", {"usuario": member.document})
    return client.post("/olvide-mi-clave/", {"canal": channel, "action": "continuar"})


def use_gateway(settings, gateway, path):
    settings.SMS_BACKEND = "oficina.notify.sms.http.SmsBackend"
    settings.SMS_HTTP_URL = gateway.url(path)
    settings.SMS_HTTP_TIMEOUT = 1


def test_a_code_is_written_to_the_outbox_and_its_body_erased_once_sent(client, sms_outbox):
    member = make_member()
    assert request_code(client, member).url == "/olvide-mi-clave/enviado/"
    message = OutboxMessage.objects.get(member=member)
    assert message.status == Status.SENT and message.sent_at is not None
    assert message.body == "" and message.html == ""  # the code does not outlive its delivery
    assert message.expires_at is not None
    assert len(sms_outbox) == 1


def test_a_gateway_outage_is_retried_until_it_is_delivered_once(client, settings, sms_gateway):
    member = make_member()
    use_gateway(settings, sms_gateway, "/status/503")
    assert request_code(client, member).url == "/olvide-mi-clave/enviado/"  # durably queued
    message = OutboxMessage.objects.get(member=member)
    assert message.status == Status.RETRYING and message.attempts == 1
    assert message.body  # kept for the retry
    assert "503" in message.last_error and message.body not in message.last_error

    settings.SMS_HTTP_URL = sms_gateway.url("/send")
    later = timezone.now() + timedelta(minutes=1)
    assert outbox_sweep(now=later) == 1  # the immediate backend delivers inline
    message.refresh_from_db()
    assert message.status == Status.SENT and message.attempts == 2
    delivered = [r for r in sms_gateway.requests if r.path == "/send"]
    assert len(delivered) == 1
    # Both tries carried the same idempotency key, so a gateway can drop a duplicate.
    keys = {r.headers["idempotency-key"] for r in sms_gateway.requests}
    assert keys == {f"oficina-outbox-{message.pk}"}
    assert json.loads(delivered[0].body)["reference"] == f"oficina-outbox-{message.pk}"
    assert outbox_sweep(now=later + timedelta(minutes=5)) == 0  # nothing is sent twice


def test_a_permanent_refusal_is_final_audited_and_erased(client, settings, sms_gateway):
    member = make_member()
    use_gateway(settings, sms_gateway, "/status/400")
    request_code(client, member)
    message = OutboxMessage.objects.get(member=member)
    assert message.status == Status.FAILED and message.body == ""
    assert Event.objects.filter(kind="message_failed", member_id=member.pk).exists()
    assert outbox_retry(message=message) is False  # nothing left to send: the member asks again


def test_retries_stop_after_the_configured_attempts(settings, sms_gateway):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    use_gateway(settings, sms_gateway, "/status/500")
    member = make_member()
    message = message_queue(member=member, channel="sms", template="pin_changed", context={})
    statuses = [outbox_deliver(message_id=message.pk) for _ in range(3)]
    assert statuses == [Status.RETRYING, Status.RETRYING, Status.FAILED]
    assert outbox_deliver(message_id=message.pk) == "skipped"
    assert len(sms_gateway.requests) == 3


def test_a_message_interrupted_mid_send_is_resumed_by_the_sweep(sms_outbox):
    member = make_member()
    message = message_queue(member=member, channel="sms", template="pin_changed", context={})
    # A worker took it and died: the row says "sending" with a lease that has run out.
    OutboxMessage.objects.filter(pk=message.pk).update(
        status=Status.SENDING, attempts=1, lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert outbox_sweep() == 1
    message.refresh_from_db()
    assert message.status == Status.SENT and message.attempts == 2
    assert len(sms_outbox) == 1


def test_a_message_another_worker_holds_is_left_alone(sms_outbox):
    member = make_member()
    message = message_queue(member=member, channel="sms", template="pin_changed", context={})
    OutboxMessage.objects.filter(pk=message.pk).update(
        status=Status.SENDING, lease_until=timezone.now() + timedelta(seconds=60)
    )
    assert outbox_deliver(message_id=message.pk) == "leased"
    assert sms_outbox == []


def test_a_code_that_could_not_be_sent_in_time_is_never_sent_late(sms_outbox):
    member = make_member()
    message = message_queue(
        member=member,
        channel="sms",
        template="temporary_code",
        context={"code": "123456"},
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert outbox_deliver(message_id=message.pk) == Status.EXPIRED
    message.refresh_from_db()
    assert message.body == "" and sms_outbox == []


def test_an_operator_can_retry_a_failed_message(settings, sms_gateway):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    use_gateway(settings, sms_gateway, "/status/503")
    member = make_member()
    message = message_queue(member=member, channel="sms", template="pin_changed", context={})
    assert outbox_deliver(message_id=message.pk) == Status.FAILED
    OutboxMessage.objects.filter(pk=message.pk).update(body="kept for the operator")  # failed-by-count keeps
    message.refresh_from_db()
    settings.SMS_HTTP_URL = sms_gateway.url("/send")
    assert outbox_retry(message=message) is True
    message.refresh_from_db()
    assert message.status == Status.SENT


def test_e_mail_retries_keep_one_message_id(settings):
    member = make_member()
    message = message_queue(member=member, channel="email", template="pin_changed", context={})
    outbox_deliver(message_id=message.pk)
    assert mail.outbox[-1].extra_headers["Message-ID"].startswith(f"<oficina-outbox-{message.pk}@")


@pytest.mark.django_db(transaction=True)
def test_with_the_database_backend_the_worker_delivers_what_the_request_queued(client, settings, sms_outbox):
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "outbox"]}
    }
    from django_tasks import task_backends

    task_backends._settings = task_backends.settings = None  # type: ignore[attr-defined]
    try:
        task_backends.__dict__.pop("settings", None)
    except AttributeError:
        pass
    member = make_member()
    assert request_code(client, member).url == "/olvide-mi-clave/enviado/"
    message = OutboxMessage.objects.get(member=member)
    assert message.status == Status.PENDING and sms_outbox == []  # queued, not yet sent
    call_command(
        "db_worker", "--batch", "--queue-name", "outbox", "--no-startup-delay", "--no-reload", verbosity=0
    )
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert len(sms_outbox) == 1


def test_purge_expired_deletes_old_codes_and_delivered_messages_but_keeps_recent_ones(client, sms_outbox):
    from django.core.management import call_command

    from oficina.signin.models import TemporaryCode

    old_member, new_member = make_member(), make_member()
    request_code(client, old_member)
    client.cookies.clear()
    request_code(client, new_member)
    long_ago = timezone.now() - timedelta(days=200)
    TemporaryCode.objects.filter(member=old_member).update(created_at=long_ago)
    OutboxMessage.objects.filter(member=old_member).update(created_at=long_ago)
    events_before = Event.objects.count()
    call_command("purge_expired")
    assert not TemporaryCode.objects.filter(member=old_member).exists()
    assert not OutboxMessage.objects.filter(member=old_member).exists()
    assert TemporaryCode.objects.filter(member=new_member).exists()
    assert OutboxMessage.objects.filter(member=new_member).exists()
    assert Event.objects.count() == events_before  # the audit chain is evidence: never purged
