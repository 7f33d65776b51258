"""Messages go through a durable outbox and a background task, with retries and no duplicates."""

from __future__ import annotations

import json
import logging
import re
import smtplib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar
from unittest import mock

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from oficina.audit.models import Event
from oficina.members.models import Member
from oficina.notify.models import OutboxMessage
from oficina.notify.outbox import CODE_KINDS, message_queue, outbox_deliver, outbox_retry, outbox_sweep
from oficina.notify.sms import SmsError, SmsMessage
from oficina.notify.sms.base import BaseSmsBackend
from oficina.signin.models import TemporaryCode
from oficina.signin.pin import secret_check
from tests.factories import make_member
from tests.notify_fixtures import queued_task_messages

pytestmark = pytest.mark.django_db

Status = OutboxMessage.Status
TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "notify"


def request_code(client, member, channel="sms"):
    client.post("/", {"usuario": member.document})
    return client.post("/olvide-mi-clave/", {"canal": channel, "action": "continuar"})


def use_gateway(settings, gateway, path):
    settings.SMS_BACKEND = "oficina.notify.sms.http.SmsBackend"
    settings.SMS_HTTP_URL = gateway.url(path)
    settings.SMS_HTTP_TIMEOUT = 1


class OutboxClock:
    """The outbox's clock (django.utils.timezone.now), moved by hand."""

    def __init__(self) -> None:
        self.now = timezone.now()


@contextmanager
def outbox_clock() -> Iterator[OutboxClock]:
    clock = OutboxClock()
    with mock.patch("django.utils.timezone.now", side_effect=lambda: clock.now):
        yield clock


def import_notices(member: Member, count: int) -> list[OutboxMessage]:
    """`count` notices of a contact change by a registry import, queued, not dispatched."""
    return [
        message_queue(member=member, channel="sms", template="import_contact_changed", context={})
        for _ in range(count)
    ]


def queued_code(
    member, code: str = "123456", *, expires_in: timedelta = timedelta(minutes=10)
) -> OutboxMessage:
    """A temporary code's SMS, queued as a code request queues it."""
    return message_queue(
        member=member,
        channel="sms",
        template="temporary_code",
        context={"code": code},
        expires_at=timezone.now() + expires_in,
    )


def deliver_until_final(message: OutboxMessage, clock: OutboxClock) -> str:
    """The first try, then every retry when its backoff is over, handed to the task by the sweep as the
    worker does during a long outage (the immediate backend delivers inline); the final status."""
    status = outbox_deliver(message_id=message.pk)
    while status == Status.RETRYING:
        due = OutboxMessage.objects.get(pk=message.pk).next_attempt_at
        assert isinstance(due, datetime)
        clock.now = due
        assert outbox_sweep() == 1
        status = OutboxMessage.objects.get(pk=message.pk).status
    return status


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
    with outbox_clock() as clock:
        clock.now = later
        assert outbox_sweep() == 1  # the immediate backend delivers inline
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
    statuses = []
    with outbox_clock() as clock:
        for _ in range(3):
            statuses.append(outbox_deliver(message_id=message.pk))
            clock.now = OutboxMessage.objects.get(pk=message.pk).next_attempt_at or clock.now
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
    message = queued_code(member, expires_in=-timedelta(seconds=1))
    assert outbox_deliver(message_id=message.pk) == Status.EXPIRED
    message.refresh_from_db()
    assert message.body == "" and sms_outbox == []


def test_an_operator_can_retry_a_failed_message(settings, sms_gateway):
    """A notice that failed for good during a long outage (every attempt, 10 s to 810 s apart, about
    20 minutes) is resent by the operator's "Reintentar" once the gateway is back."""
    use_gateway(settings, sms_gateway, "/status/503")
    member = make_member()
    message = message_queue(member=member, channel="sms", template="access_locked", context={"attempts": 5})
    with outbox_clock() as clock:
        started = clock.now
        assert deliver_until_final(message, clock) == Status.FAILED
        assert clock.now - started == timedelta(seconds=10 + 30 + 90 + 270 + 810)
    message.refresh_from_db()
    assert message.attempts == settings.OUTBOX_MAX_ATTEMPTS == len(sms_gateway.requests)
    assert message.body  # a notice keeps its text for the operator

    settings.SMS_HTTP_URL = sms_gateway.url("/send")
    assert outbox_retry(message=message) is True
    message.refresh_from_db()
    assert message.status == Status.SENT and message.body == ""
    delivered = [r for r in sms_gateway.requests if r.path == "/send"]
    assert (
        len(delivered) == 1 and json.loads(delivered[0].body)["reference"] == f"oficina-outbox-{message.pk}"
    )
    assert outbox_retry(message=message) is False  # sent: nothing to retry


def test_a_retry_whose_event_cannot_be_written_puts_nothing_back_in_the_queue(rf, database_tasks):
    """The operator's "Reintentar" and its `operator_outbox_retry` event are one transaction: with the
    event refused, the notice stays failed and no delivery task is left behind."""
    from django.contrib.auth import get_user_model
    from django.db import DatabaseError
    from django_tasks_db.models import DBTaskResult

    from oficina.backoffice.services import outbox_message_retry
    from tests.test_audit_seal import events_refused

    member = make_member()
    message = message_queue(member=member, channel="sms", template="access_locked", context={"attempts": 5})
    OutboxMessage.objects.filter(pk=message.pk).update(status=Status.FAILED, attempts=6)
    DBTaskResult.objects.all().delete()
    request = rf.post("/operadores/")
    request.user = get_user_model().objects.create_user("cajero", is_staff=True)

    with events_refused("operator_outbox_retry"), pytest.raises(DatabaseError):
        outbox_message_retry(request=request, message=message)

    message.refresh_from_db()
    assert message.status == Status.FAILED and message.body
    assert not DBTaskResult.objects.exists()
    assert outbox_message_retry(request=request, message=message) is True  # and it works once allowed
    assert DBTaskResult.objects.count() == 1
    assert Event.objects.filter(kind="operator_outbox_retry", data__retried=True).count() == 1


def test_a_code_that_failed_after_every_attempt_is_erased_and_never_retried(settings, sms_gateway):
    settings.OUTBOX_MAX_ATTEMPTS = 3  # all of them before the code's ten minutes are over
    use_gateway(settings, sms_gateway, "/status/503")
    member = make_member()
    message = queued_code(member)
    with outbox_clock() as clock:
        assert deliver_until_final(message, clock) == Status.FAILED
    message.refresh_from_db()
    assert message.body == "" and message.html == ""  # the code does not outlive its delivery

    settings.SMS_HTTP_URL = sms_gateway.url("/send")
    assert outbox_retry(message=message) is False  # the member asks for a new code
    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert [r for r in sms_gateway.requests if r.path == "/send"] == []


def test_every_template_that_shows_a_code_is_of_a_code_kind():
    """A template that shows {{ code }} makes its kind a code message (CODE_KINDS)."""
    kinds = {
        path.name.split("_sms")[0].split("_email")[0]
        for path in TEMPLATES.iterdir()
        if re.search(r"{{\s*code\b", path.read_text())
    }
    assert kinds == set(CODE_KINDS) == {"temporary_code", "contact_verify"}


def test_a_superseded_code_is_never_sent_once_the_gateway_is_back(client, settings, sms_gateway):
    settings.CODE_RESEND_SECONDS = 0  # the member asks again at once: the wait is not the rule here
    member = make_member()
    use_gateway(settings, sms_gateway, "/status/503")
    request_code(client, member)
    request_code(client, member)
    first, second = OutboxMessage.objects.filter(member=member).order_by("id")
    assert first.status == Status.EXPIRED and first.body == "" and first.html == ""
    assert "nueva" in first.last_error
    assert second.status == Status.RETRYING and second.body

    settings.SMS_HTTP_URL = sms_gateway.url("/send")
    with outbox_clock() as clock:
        clock.now += timedelta(minutes=1)
        assert outbox_sweep() == 1
    # Neither a task still queued for the first message nor an operator can send it.
    assert outbox_deliver(message_id=first.pk) == "skipped"
    assert outbox_retry(message=first) is False
    delivered = [json.loads(r.body) for r in sms_gateway.requests if r.path == "/send"]
    assert [sms["reference"] for sms in delivered] == [f"oficina-outbox-{second.pk}"]
    live = TemporaryCode.objects.get(member=member, superseded_at__isnull=True)
    assert secret_check(re.findall(r"\b\d{6}\b", delivered[0]["text"])[0], live.code_hash)
    first.refresh_from_db()
    assert first.status == Status.EXPIRED and first.body == ""


def test_a_superseded_code_held_by_a_dead_worker_is_not_sent_when_its_lease_runs_out(
    client, settings, sms_gateway
):
    settings.CODE_RESEND_SECONDS = 0
    member = make_member()
    use_gateway(settings, sms_gateway, "/status/503")
    request_code(client, member)
    first = OutboxMessage.objects.get(member=member)
    # A worker took its retry and died before the gateway answered.
    OutboxMessage.objects.filter(pk=first.pk).update(
        status=Status.SENDING, attempts=2, lease_until=timezone.now() + timedelta(seconds=60)
    )
    settings.SMS_HTTP_URL = sms_gateway.url("/send")
    request_code(client, member)

    assert outbox_sweep(now=timezone.now() + timedelta(minutes=5)) == 0
    first.refresh_from_db()
    assert first.status == Status.EXPIRED and first.body == ""
    second = OutboxMessage.objects.exclude(pk=first.pk).get(member=member)
    delivered = [json.loads(r.body) for r in sms_gateway.requests if r.path == "/send"]
    assert [sms["reference"] for sms in delivered] == [f"oficina-outbox-{second.pk}"]


class NewCodeAskedMidSend(BaseSmsBackend):
    """A gateway still busy with a code when the member, tired of waiting, asks for another one; that
    first send then times out or goes through (`times_out`). Every later send goes through."""

    member: ClassVar[Member | None] = None
    times_out: ClassVar[bool] = True
    sent: ClassVar[list[SmsMessage]] = []

    def send_messages(self, messages: Sequence[SmsMessage]) -> int:
        cls = type(self)
        if cls.member is not None:
            member, cls.member = cls.member, None
            request_code(Client(), member)  # its message is delivered inline, through this backend
            if cls.times_out:
                raise SmsError("SMS gateway timed out after 1s")
        cls.sent.extend(messages)
        return len(messages)


@pytest.mark.parametrize("times_out", [True, False], ids=["times-out", "goes-through"])
def test_a_code_superseded_while_it_is_being_sent_is_not_put_back_in_the_queue(
    client, settings, sms_gateway, times_out
):
    settings.CODE_RESEND_SECONDS = 0
    member = make_member()
    use_gateway(settings, sms_gateway, "/status/503")
    request_code(client, member)
    first = OutboxMessage.objects.get(member=member)
    settings.SMS_BACKEND = f"{__name__}.NewCodeAskedMidSend"
    NewCodeAskedMidSend.member = member
    NewCodeAskedMidSend.times_out = times_out
    NewCodeAskedMidSend.sent = []

    with outbox_clock() as clock:
        clock.now = first.next_attempt_at  # its retry is due
        outbox_deliver(message_id=first.pk)

    first.refresh_from_db()
    second = OutboxMessage.objects.exclude(pk=first.pk).get(member=member)
    assert second.status == Status.SENT
    # Timed out: it stays expired (not "retrying" with an empty body). Went through: it was sent.
    assert first.status == (Status.EXPIRED if times_out else Status.SENT) and first.body == ""
    assert outbox_sweep(now=timezone.now() + timedelta(hours=1)) == 0
    sent = [message.reference for message in NewCodeAskedMidSend.sent]
    assert sent == [f"oficina-outbox-{second.pk}"] + ([] if times_out else [f"oficina-outbox-{first.pk}"])


def test_an_unexpected_error_while_sending_is_retried_then_fails_instead_of_hanging(settings):
    settings.SMS_BACKEND = "oficina.notify.sms.http.SmsBackend"
    settings.SMS_HTTP_URL = "ftp://gateway.example/send"  # the backend refuses to start
    member = make_member()
    message = message_queue(member=member, channel="sms", template="pin_changed", context={})
    with outbox_clock() as clock:
        assert deliver_until_final(message, clock) == Status.FAILED  # never left "sending"
    message.refresh_from_db()
    assert message.attempts == settings.OUTBOX_MAX_ATTEMPTS
    assert message.last_error.startswith("ImproperlyConfigured") and message.body


class RefusingMailServer(BaseEmailBackend):
    """An SMTP server that refuses the mailbox, quoting it back as mail servers do."""

    code = 550

    def send_messages(self, messages):
        address = messages[0].to[0]
        reply = f"5.1.1 <{address}>: Recipient address rejected: User unknown".encode()
        raise smtplib.SMTPRecipientsRefused({address: (self.code, reply)})


@pytest.mark.parametrize(("code", "status"), [(550, Status.FAILED), (450, Status.RETRYING)])
def test_a_refused_mailbox_is_named_only_masked_in_the_outbox_and_the_log(settings, caplog, code, status):
    """The outbox page shows operators a masked destination; the error it also shows (and the log)
    must not name the full address the server quoted back."""
    settings.EMAIL_BACKEND = f"{__name__}.RefusingMailServer"
    RefusingMailServer.code = code
    member = make_member(email="maria.fernanda@mail.com")
    message = message_queue(member=member, channel="email", template="pin_changed", context={})

    with caplog.at_level(logging.INFO):
        assert outbox_deliver(message_id=message.pk) == status

    message.refresh_from_db()
    assert message.last_error.startswith(f"SMTPRecipientsRefused: {code} 5.1.1 <maria****@mail.com>")
    assert "maria.fernanda" not in message.last_error
    assert "maria.fernanda" not in caplog.text


def test_e_mail_retries_keep_one_message_id(settings):
    member = make_member()
    message = message_queue(member=member, channel="email", template="pin_changed", context={})
    outbox_deliver(message_id=message.pk)
    assert mail.outbox[-1].extra_headers["Message-ID"].startswith(f"<oficina-outbox-{message.pk}@")


@pytest.mark.django_db(transaction=True)
def test_with_the_database_backend_the_worker_delivers_what_the_request_queued(
    client, database_tasks, sms_outbox
):
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


def test_purge_expired_deletes_a_failed_notice_with_the_text_it_kept(settings, sms_gateway):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    use_gateway(settings, sms_gateway, "/status/503")
    old, recent = (
        message_queue(member=make_member(), channel="sms", template="pin_changed", context={})
        for _ in range(2)
    )
    for message in (old, recent):
        assert outbox_deliver(message_id=message.pk) == Status.FAILED
    OutboxMessage.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=settings.RETENTION_OUTBOX_DAYS + 1)
    )
    assert OutboxMessage.objects.get(pk=old.pk).body  # kept for "Reintentar" until then

    call_command("purge_expired")

    assert not OutboxMessage.objects.filter(pk=old.pk).exists()
    assert OutboxMessage.objects.get(pk=recent.pk).body


def test_a_new_contact_code_expires_the_one_still_undelivered(rf, settings, sms_gateway):
    """The office keeps only the newest contact code in the session: the earlier message must not
    arrive late and be typed against it."""
    from importlib import import_module

    from oficina.office.services import contact_verification_start

    member = make_member(returning=True)
    request = rf.post("/oficina/datos-de-contacto/")
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    use_gateway(settings, sms_gateway, "/status/503")
    for mobile in ("+573100001122", "+573100003344"):
        contact_verification_start(request=request, member=member, mobile=mobile, email=member.email)

    first, second = OutboxMessage.objects.filter(kind="contact_verify").order_by("pk")
    assert (first.status, first.body) == (OutboxMessage.Status.EXPIRED, "")
    assert second.status == OutboxMessage.Status.RETRYING and second.body


def test_a_retry_that_is_not_due_yet_spends_no_attempt(settings, sms_gateway):
    """The sweep and the scheduled retry may both hold a task for a message: only one that comes once
    the backoff has passed may try again, so a fast-failing gateway cannot use up the attempts."""
    use_gateway(settings, sms_gateway, "/status/503")
    member = make_member()
    message = message_queue(member=member, channel="sms", template="pin_changed", context={})
    assert outbox_deliver(message_id=message.pk) == Status.RETRYING

    assert [outbox_deliver(message_id=message.pk) for _ in range(3)] == ["not due"] * 3

    message.refresh_from_db()
    assert message.attempts == 1 and len(sms_gateway.requests) == 1
    with outbox_clock() as clock:
        clock.now = message.next_attempt_at
        assert outbox_deliver(message_id=message.pk) == Status.RETRYING
    assert len(sms_gateway.requests) == 2


def test_many_messages_are_enqueued_a_chunk_to_a_transaction(database_tasks, monkeypatch, caplog):
    """A registry import's thousands of notices: one commit per chunk, not per task. A chunk that fails
    is lost whole (its rows stay pending for the sweep), the others are not, and it is logged once."""
    from django_tasks_db import DatabaseBackend

    from oficina.notify import outbox

    monkeypatch.setattr(outbox, "DISPATCH_CHUNK", 2)
    monkeypatch.setattr(outbox, "TASK_BATCH", 1)
    member = make_member(mobile="+573001112233")
    messages = [
        message_queue(member=member, channel="sms", template="pin_changed", context={}) for _ in range(5)
    ]
    ids = [message.pk for message in messages]
    enqueue = DatabaseBackend.enqueue

    def failing_on_the_fourth(self, task, args, kwargs):  # type: ignore[no-untyped-def]
        if args[0] == [ids[3]]:
            raise RuntimeError("database gone")
        return enqueue(self, task, args, kwargs)

    monkeypatch.setattr(DatabaseBackend, "enqueue", failing_on_the_fourth)

    outbox.outbox_dispatch(messages)

    # ids[2] was enqueued, then ids[3] failed in the same chunk: both are left to the sweep.
    assert queued_task_messages() == [ids[0], ids[1], ids[4]]
    failures = [record for record in caplog.records if "could not enqueue" in record.getMessage()]
    assert [record.getMessage() for record in failures] == [
        f"could not enqueue outbox messages {ids[2]} to {ids[3]}; the sweep will retry"
    ]
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {Status.PENDING}


def test_a_single_message_is_enqueued_on_its_own(database_tasks):
    member = make_member(mobile="+573001112233")
    message = message_queue(member=member, channel="sms", template="pin_changed", context={})
    from oficina.notify.outbox import outbox_dispatch

    outbox_dispatch([message])

    assert queued_task_messages() == [message.pk]


@pytest.mark.django_db(transaction=True)
def test_a_temporary_code_is_delivered_before_the_notices_queued_ahead_of_it(database_tasks, sms_outbox):
    """docs/security.md G21: a registry import can queue thousands of notices; a member asking for a
    code meanwhile must not wait behind them (the code expires in minutes)."""
    from oficina.notify.outbox import outbox_dispatch

    member = make_member(mobile="+573001112233")
    notices = import_notices(member, 3)
    outbox_dispatch(notices)
    code = queued_code(member, "482913")
    outbox_dispatch([code])

    call_command(
        "db_worker", "--batch", "--queue-name", "outbox", "--no-startup-delay", "--no-reload", verbosity=0
    )

    assert len(sms_outbox) == 4
    assert "482913" in sms_outbox[0].body
    assert all("actualizamos tu celular" in sms.body for sms in sms_outbox[1:])


def test_many_notices_share_a_task_a_batch_while_a_code_keeps_its_own(database_tasks, monkeypatch):
    """One task row per TASK_BATCH notices (a registry import's cost was one row each); a temporary
    code dispatched with them still has its own task, with the priority that puts it first."""
    from django_tasks_db.models import DBTaskResult

    from oficina.notify import outbox

    monkeypatch.setattr(outbox, "TASK_BATCH", 4)
    member = make_member(mobile="+573001112233")
    notices = [
        message_queue(member=member, channel="sms", template="pin_changed", context={}) for _ in range(9)
    ]
    code = queued_code(member, "482913")

    outbox.outbox_dispatch([*notices[:5], code, *notices[5:]])

    tasks = list(DBTaskResult.objects.order_by("enqueued_at").values_list("args_kwargs", "priority"))
    ids = [notice.pk for notice in notices]
    assert tasks == [
        ({"args": [code.pk], "kwargs": {}}, outbox.CODE_PRIORITY),
        ({"args": [ids[0:4]], "kwargs": {}}, 0),
        ({"args": [ids[4:8]], "kwargs": {}}, 0),
        ({"args": [ids[8:9]], "kwargs": {}}, 0),
    ]


@pytest.mark.django_db(transaction=True)
def test_the_worker_delivers_every_message_of_a_batch_task(database_tasks, sms_outbox):
    from oficina.notify.outbox import outbox_dispatch

    member = make_member(mobile="+573001112233")
    notices = import_notices(member, 25)
    outbox_dispatch(notices)

    call_command(
        "db_worker", "--batch", "--queue-name", "outbox", "--no-startup-delay", "--no-reload", verbosity=0
    )

    assert len(sms_outbox) == 25
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {Status.SENT}


def test_a_fault_with_one_message_of_a_batch_does_not_stop_the_others(monkeypatch, sms_outbox, caplog):
    from oficina.notify import outbox

    member = make_member(mobile="+573001112233")
    ids = [
        message_queue(member=member, channel="sms", template="pin_changed", context={}).pk for _ in range(3)
    ]
    deliver = outbox.outbox_deliver

    def database_gone_for_the_second(*, message_id: int) -> str:
        if message_id == ids[1]:
            raise RuntimeError("database gone")
        return deliver(message_id=message_id)

    monkeypatch.setattr(outbox, "outbox_deliver", database_gone_for_the_second)

    assert outbox.outbox_deliver_many(message_ids=ids) == "error=1 sent=2"

    assert OutboxMessage.objects.get(pk=ids[1]).status == Status.PENDING  # left for the sweep
    assert len(sms_outbox) == 2
    assert [r.getMessage() for r in caplog.records if "could not deliver" in r.getMessage()] == [
        f"could not deliver outbox message {ids[1]}; the sweep will retry"
    ]
    assert outbox.outbox_sweep(now=timezone.now() + timedelta(minutes=1)) == 1
    assert OutboxMessage.objects.get(pk=ids[1]).status == Status.SENT


@pytest.mark.django_db(transaction=True)
def test_a_members_own_notice_is_delivered_before_an_imports_backlog(database_tasks, sms_outbox):
    """docs/security.md G21: an import's notices are dispatched in bulk, after whatever else waits."""
    from oficina.notify.outbox import outbox_dispatch

    member = make_member(mobile="+573001112233")
    backlog = import_notices(member, 3)
    outbox_dispatch(backlog[:1], bulk=True)  # even one notice of an import waits behind the others
    outbox_dispatch(backlog[1:], bulk=True)
    outbox_dispatch([message_queue(member=member, channel="sms", template="pin_changed", context={})])

    call_command(
        "db_worker", "--batch", "--queue-name", "outbox", "--no-startup-delay", "--no-reload", verbosity=0
    )

    assert len(sms_outbox) == 4
    assert "actualizamos tu celular" not in sms_outbox[0].body
    assert all("actualizamos tu celular" in sms.body for sms in sms_outbox[1:])


def test_a_batch_stops_after_the_message_in_hand_when_the_worker_is_stopping(monkeypatch, sms_outbox):
    """With the gateway hanging, a batch's messages would each wait out the timeout: a stop signal
    must not wait for all of them. What is left stays pending for the sweep."""
    from oficina.notify import outbox

    member = make_member(mobile="+573001112233")
    ids = [
        message_queue(member=member, channel="sms", template="pin_changed", context={}).pk for _ in range(3)
    ]
    deliver = outbox.outbox_deliver

    def signal_arrives_during_the_first(*, message_id: int) -> str:
        outbox.outbox_stop()
        return deliver(message_id=message_id)

    monkeypatch.setattr(outbox, "outbox_deliver", signal_arrives_during_the_first)
    monkeypatch.setattr(outbox, "_stopping", threading.Event())  # this process goes on after the test

    assert outbox.outbox_deliver_many(message_ids=ids) == "left=2 sent=1"
    statuses = dict(OutboxMessage.objects.values_list("pk", "status"))
    assert statuses == {ids[0]: Status.SENT, ids[1]: Status.PENDING, ids[2]: Status.PENDING}
    assert len(sms_outbox) == 1


def test_a_code_typed_while_its_message_waits_for_a_retry_is_not_sent_again(client, settings, sms_gateway):
    """The gateway took the SMS but answered with an error (or its answer was lost): the member has the
    code and uses it, while the outbox still holds it in clear for a retry that would text them a
    dead code. Once used, its message is withdrawn and erased."""
    from tests.keypad import type_on_keypad

    member = make_member()
    use_gateway(settings, sms_gateway, "/status/503")
    request_code(client, member)
    message = OutboxMessage.objects.get(member=member)
    assert message.status == Status.RETRYING and message.body
    code = re.findall(r"\b\d{6}\b", json.loads(sms_gateway.requests[0].body)["text"])[0]

    client.post("/", {"usuario": member.document})  # «Ir a ingresar usuario», as the guide says
    assert type_on_keypad(client, "/clave/", code).url == "/nueva-clave/"

    message.refresh_from_db()
    assert message.status == Status.EXPIRED and message.body == "" and message.html == ""
    settings.SMS_HTTP_URL = sms_gateway.url("/send")
    with outbox_clock() as clock:
        clock.now += timedelta(minutes=1)
        assert outbox_sweep() == 0
    assert outbox_deliver(message_id=message.pk) == "skipped"
    assert [r.path for r in sms_gateway.requests] == ["/status/503"]


def test_a_code_whose_tries_ran_out_is_not_sent_again(client, settings, sms_gateway):
    """Five wrong codes end the code: a retry of its message would only text a dead code."""
    from tests.keypad import type_on_keypad

    member = make_member()
    use_gateway(settings, sms_gateway, "/status/503")
    request_code(client, member)
    code = re.findall(r"\b\d{6}\b", json.loads(sms_gateway.requests[0].body)["text"])[0]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    client.post("/", {"usuario": member.document})
    for _ in range(settings.CODE_MAX_ATTEMPTS):
        type_on_keypad(client, "/clave/", wrong)

    message = OutboxMessage.objects.get(member=member)
    assert message.status == Status.EXPIRED and message.body == ""


@pytest.mark.parametrize("typed", ["right", "wrong"])
def test_a_contact_code_used_or_spent_is_not_sent_again(rf, settings, sms_gateway, typed):
    """As a temporary code: the code to confirm a new mobile, once typed right (or wrong as many
    times as allowed), is not texted again by a pending retry, nor kept in clear."""
    from importlib import import_module

    from oficina.members.models import Member, session_digest
    from oficina.office.services import (
        STEPUP_TOKEN_KEY,
        contact_verification_check,
        contact_verification_start,
    )
    from oficina.signin.flows.login import MEMBER_SESSION_KEY

    member = make_member(returning=True)
    request = rf.post("/oficina/datos-de-contacto/")
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    request.member = member
    # A signed-in session holding a step-up, as stepup_grant leaves it: the change is its one change.
    request.session[MEMBER_SESSION_KEY] = {"id": member.pk, STEPUP_TOKEN_KEY: "paso"}
    request.session.create()
    Member.objects.filter(pk=member.pk).update(
        session_digest=session_digest(request.session.session_key), stepup_digest=session_digest("paso")
    )
    use_gateway(settings, sms_gateway, "/status/503")
    contact_verification_start(request=request, member=member, mobile="+573100001122", email=member.email)
    code = re.findall(r"\b\d{6}\b", json.loads(sms_gateway.requests[0].body)["text"])[0]

    if typed == "right":
        assert contact_verification_check(request=request, member=member, code=code) == "ok"
    else:
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        outcomes = [contact_verification_check(request=request, member=member, code=wrong) for _ in range(5)]
        assert outcomes[-1] == "exhausted"

    message = OutboxMessage.objects.get(kind="contact_verify")
    assert (message.status, message.body, message.html) == (Status.EXPIRED, "", "")


@contextmanager
def trickling_smtp_server(pause: float) -> Iterator[int]:
    """An SMTP server that answers everything, each reply line `pause` seconds after the last: every
    wait is shorter than a per-wait timeout, while the whole exchange takes many of them."""
    import socket
    import time

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def reply(conn: socket.socket, *lines: bytes) -> None:
        for line in lines:
            if done.wait(pause):
                return
            conn.sendall(line + b"\r\n")

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                stream = conn.makefile("rb")
                try:
                    reply(conn, b"220 slow.example ESMTP")
                    in_data = False
                    for raw in stream:
                        line = raw.rstrip(b"\r\n")
                        if in_data:
                            if line == b".":
                                in_data = False
                                reply(conn, b"250 queued")
                            continue
                        verb = line[:4].upper()
                        if verb == b"EHLO":
                            reply(
                                conn, b"250-slow.example", *(b"250-X-SLOW%d" % i for i in range(8)), b"250 OK"
                            )
                        elif verb == b"DATA":
                            in_data = True
                            reply(conn, b"354 go ahead")
                        elif verb == b"QUIT":
                            reply(conn, b"221 bye")
                            break
                        else:
                            reply(conn, b"250 OK")
                except OSError:
                    pass  # the client gave up
        time.sleep(0)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join(timeout=5)
        listener.close()


def test_a_mail_server_answering_slowly_line_by_line_is_given_up_within_the_timeout(settings):
    """Each wait on a slow server is within EMAIL_TIMEOUT, yet the exchange goes on and on: past the
    outbox's lease another worker takes the message and it is sent twice. The whole exchange is
    bounded, as the SMS gateway's is: the try is given up, retryable, long before the lease runs out."""
    import time

    settings.EMAIL_BACKEND = "oficina.notify.smtp.EmailBackend"
    settings.EMAIL_TIMEOUT = 1
    member = make_member(mobile="")
    message = message_queue(member=member, channel="email", template="pin_changed", context={})
    with trickling_smtp_server(pause=0.3) as port:
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        started = time.monotonic()
        status = outbox_deliver(message_id=message.pk)
        took = time.monotonic() - started

    assert status == Status.RETRYING
    assert took < 2.5
    message.refresh_from_db()
    assert "SMTPServerDisconnected" in message.last_error and message.body


def test_purge_expired_dry_run_counts_everything_a_run_deletes(settings):
    """--dry-run named codes, messages and counters, but not the expired sessions and finished task
    results a run deletes too (operator's runbook walk-through, 2026-12-06)."""
    from io import StringIO

    from django.contrib.sessions.models import Session
    from django.core.management import call_command

    # The sessions purge_expired deletes (in Redis they expire there): on the PostgreSQL + Redis run too.
    settings.SESSION_STORE, settings.SESSION_ENGINE = "db", "django.contrib.sessions.backends.db"
    Session.objects.create(
        session_key="x" * 32, session_data="", expire_date=timezone.now() - timedelta(days=1)
    )
    Session.objects.create(
        session_key="y" * 32, session_data="", expire_date=timezone.now() + timedelta(days=1)
    )

    said = StringIO()
    call_command("purge_expired", "--dry-run", stdout=said)
    assert "Se borrarían:" in said.getvalue() and "1 sesiones vencidas" in said.getvalue()
    assert Session.objects.count() == 2

    said = StringIO()
    call_command("purge_expired", stdout=said)
    assert "Borrados:" in said.getvalue() and "1 sesiones vencidas" in said.getvalue()
    assert list(Session.objects.values_list("session_key", flat=True)) == ["y" * 32]
