"""The outbox: messages are written with the change that calls for them, then delivered by a task.

- `message_queue` renders a message into an OutboxMessage row; call it inside the transaction that
  changes state, so the message exists exactly when the change does (and "Hemos enviado…" is true).
- `outbox_dispatch` enqueues one delivery task per message (Django Tasks API). With the database
  backend the task row is transactional too; with the immediate backend (demo) delivery runs inline.
- `outbox_deliver` sends one message, at most once at a time (a lease), retrying transient faults
  with exponential backoff; a permanent fault, or too many, is final and audited. A retry carries the
  same idempotency key (the gateway's `reference`, the e-mail's Message-ID), so the member does not
  get the same message twice even when a worker dies after handing it over.
- `outbox_sweep` re-enqueues what was lost: due retries, expired leases, pending rows never enqueued
  (a database restart between commit and enqueue). Run it every few seconds (`manage.py outbox_sweep`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from oficina.members.models import Member
from oficina.notify.models import OutboxMessage
from oficina.notify.services import (
    EMAIL,
    SMS,
    email_message,
    email_render,
    sms_text_render,
    smtp_is_permanent,
)
from oficina.notify.sms import SmsError, send_sms

logger = logging.getLogger(__name__)

PENDING_GRACE = timedelta(seconds=30)


def message_queue(
    *,
    member: Member,
    channel: str,
    template: str,
    context: dict[str, Any],
    expires_at: datetime | None = None,
) -> OutboxMessage:
    if channel == SMS:
        to, subject, html = member.mobile, "", ""
        body = sms_text_render(f"notify/{template}_sms.txt", context)
    elif channel == EMAIL:
        to = member.email
        subject, body, html = email_render(member=member, template=template, context=context)
    else:
        raise ValueError(f"unknown channel {channel!r}")
    if not to:
        raise ValueError(f"member {member.pk} has no {channel} address")
    return OutboxMessage.objects.create(
        member=member if member.pk else None,
        kind=template,
        channel=channel,
        to=to,
        subject=subject,
        body=body,
        html=html,
        created_at=timezone.now(),
        expires_at=expires_at,
    )


def notice_queue(
    *, member: Member, template: str, context: dict[str, Any] | None = None
) -> list[OutboxMessage]:
    """A security notice on every channel the member has (pass the old contacts for a contact change)."""
    channels = [channel for channel, address in ((SMS, member.mobile), (EMAIL, member.email)) if address]
    return [
        message_queue(member=member, channel=channel, template=template, context=context or {})
        for channel in channels
    ]


def outbox_dispatch(messages: Iterable[OutboxMessage]) -> None:
    from oficina.notify.tasks import deliver_outbox_message

    for message in messages:
        try:
            deliver_outbox_message.enqueue(message.pk)
        except Exception:  # the row is durable; the sweep enqueues it again
            logger.exception("could not enqueue outbox message %s; the sweep will retry", message.pk)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(settings.OUTBOX_RETRY_BASE_SECONDS * 3 ** (attempts - 1), 900))


def _finish(message: OutboxMessage, status: str, **fields: Any) -> None:
    OutboxMessage.objects.filter(pk=message.pk).update(
        status=status, body="", html="", lease_until=None, next_attempt_at=None, **fields
    )


def _transmit(message: OutboxMessage) -> None:
    reference = f"oficina-outbox-{message.pk}"
    if message.channel == SMS:
        send_sms(message.to, message.body, reference=reference)
    else:
        email_message(
            to=message.to, subject=message.subject, body=message.body, html=message.html, reference=reference
        ).send()


def outbox_deliver(*, message_id: int) -> str:
    """Delivers one message; returns its new status (or why it did nothing)."""
    from oficina.audit.services import event_record

    now = timezone.now()
    with transaction.atomic():
        message = OutboxMessage.objects.select_for_update().filter(pk=message_id).first()
        if message is None or message.status in OutboxMessage.FINAL:
            return "skipped"
        if (
            message.status == OutboxMessage.Status.SENDING
            and message.lease_until
            and message.lease_until > now
        ):
            return "leased"
        if message.expires_at and now >= message.expires_at:
            _finish(message, OutboxMessage.Status.EXPIRED, last_error="venció antes de poder enviarse")
            event_record(
                "message_expired", member=message.member, channel=message.channel, message_kind=message.kind
            )
            return OutboxMessage.Status.EXPIRED
        message.attempts += 1
        OutboxMessage.objects.filter(pk=message.pk).update(
            status=OutboxMessage.Status.SENDING,
            attempts=message.attempts,
            lease_until=now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS),
        )
    try:
        _transmit(message)
    except (SmsError, OSError) as exc:
        permanent = exc.permanent if isinstance(exc, SmsError) else smtp_is_permanent(exc)
        error = f"{type(exc).__name__}: {exc}"[:300]
        if permanent or message.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
            _finish(message, OutboxMessage.Status.FAILED, last_error=error)
            event_record(
                "message_failed",
                member=message.member,
                channel=message.channel,
                message_kind=message.kind,
                permanent=permanent,
                attempts=message.attempts,
            )
            logger.warning("outbox message %s failed for good: %s", message.pk, error)
            return OutboxMessage.Status.FAILED
        next_at = timezone.now() + _backoff(message.attempts)
        OutboxMessage.objects.filter(pk=message.pk).update(
            status=OutboxMessage.Status.RETRYING, next_attempt_at=next_at, lease_until=None, last_error=error
        )
        logger.info("outbox message %s will be retried at %s: %s", message.pk, next_at.isoformat(), error)
        _retry_later(message.pk, next_at)
        return OutboxMessage.Status.RETRYING
    _finish(message, OutboxMessage.Status.SENT, sent_at=timezone.now(), last_error="")
    return OutboxMessage.Status.SENT


def _retry_later(message_id: int, when: datetime) -> None:
    from oficina.notify.tasks import deliver_outbox_message

    if not deliver_outbox_message.get_backend().supports_defer:
        return  # the immediate backend cannot wait: the sweep will pick it up
    try:
        deliver_outbox_message.using(run_after=when).enqueue(message_id)
    except Exception:
        logger.exception("could not schedule the retry of outbox message %s; the sweep will", message_id)


def outbox_retry(*, message: OutboxMessage) -> bool:
    """An operator's "Reintentar" on a failed message: back to pending, enqueued again.
    Only messages still holding their body (not expired, not erased) can be retried."""
    if message.status != OutboxMessage.Status.FAILED or not message.body:
        return False
    OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxMessage.Status.PENDING, last_error="")
    outbox_dispatch([message])
    return True


def outbox_sweep(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    due = OutboxMessage.objects.filter(
        Q(status=OutboxMessage.Status.RETRYING, next_attempt_at__lte=now)
        | Q(status=OutboxMessage.Status.SENDING, lease_until__lt=now)
        | Q(status=OutboxMessage.Status.PENDING, created_at__lt=now - PENDING_GRACE)
    ).order_by("id")
    messages = list(due[:500])
    outbox_dispatch(messages)
    return len(messages)
