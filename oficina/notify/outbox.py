"""The outbox: messages are written with the change that calls for them, then delivered by a task.

- `message_queue` renders a message into an OutboxMessage row; call it inside the transaction that
  changes state, so the message exists exactly when the change does (and "Hemos enviado…" is true).
  `message_build` / `notice_build` render without saving, for callers that save many in one INSERT
  (`messages_save`).
- `outbox_dispatch` enqueues the delivery tasks (Django Tasks API): one per message, or, for many
  at once with the database backend, one per TASK_BATCH messages (`outbox_deliver_many`), a chunk of
  tasks to a transaction; a temporary code always has its own, which goes first. With the immediate
  backend (demo) delivery runs inline.
- `outbox_deliver` sends one message, at most once at a time (a lease), retrying transient faults
  with exponential backoff; a permanent fault, or too many, is final and audited. A retry carries the
  same idempotency key (the gateway's `reference`, the e-mail's Message-ID), so the member does not
  get the same message twice even when a worker dies after handing it over.
- A final message loses its body, except a notice that failed: it keeps it for the operator's
  "Reintentar" (`outbox_retry`). A temporary code's body never outlives its delivery (CODE_KINDS).
- `outbox_expire` withdraws messages that are no longer worth sending (a code replaced by a new one).
- `outbox_sweep` re-enqueues what was lost: due retries, expired leases, pending rows never enqueued
  (a database restart between commit and enqueue). Run it every few seconds (`manage.py outbox_sweep`).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from oficina.members.models import Member
from oficina.notify.models import OutboxMessage
from oficina.notify.services import (
    EMAIL,
    SMS,
    delivery_error_text,
    email_message,
    email_render,
    sms_text_render,
    smtp_is_permanent,
)
from oficina.notify.sms import SmsError, send_sms

if TYPE_CHECKING:
    from django_tasks.base import Task

logger = logging.getLogger(__name__)

PENDING_GRACE = timedelta(seconds=30)
DISPATCH_CHUNK = 500  # delivery tasks enqueued per transaction by outbox_dispatch
TASK_BATCH = 20  # messages one task delivers, when many are dispatched at once (codes excepted)
CODE_PRIORITY = 50  # a temporary code's delivery task; every other message's has the default, 0,
BULK_PRIORITY = -10  # except a registry import's notices (outbox_dispatch(bulk=True)), which go last

# The kinds of message that carry a temporary code (their templates show {{ code }}): erased at any
# final state, failed included, and never resent by an operator (the member asks for a new code).
CODE_KINDS = frozenset({"temporary_code", "contact_verify"})

_stopping = threading.Event()  # set by outbox_stop

UNDELIVERED = (OutboxMessage.Status.PENDING, OutboxMessage.Status.SENDING, OutboxMessage.Status.RETRYING)


def message_build(
    *,
    member: Member,
    channel: str,
    template: str,
    context: dict[str, Any],
    expires_at: datetime | None = None,
) -> OutboxMessage:
    """The message rendered, not saved: `message_queue` saves one, `notice_queue` all of a notice at once."""
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
    return OutboxMessage(
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


def message_queue(
    *,
    member: Member,
    channel: str,
    template: str,
    context: dict[str, Any],
    expires_at: datetime | None = None,
) -> OutboxMessage:
    message = message_build(
        member=member, channel=channel, template=template, context=context, expires_at=expires_at
    )
    message.save(force_insert=True)
    return message


def notice_build(
    *, member: Member, template: str, context: dict[str, Any] | None = None
) -> list[OutboxMessage]:
    """A security notice on every channel the member has (pass the old contacts for a contact change),
    rendered, not saved."""
    channels = [channel for channel, address in ((SMS, member.mobile), (EMAIL, member.email)) if address]
    return [
        message_build(member=member, channel=channel, template=template, context=context or {})
        for channel in channels
    ]


def notice_queue(
    *, member: Member, template: str, context: dict[str, Any] | None = None
) -> list[OutboxMessage]:
    """notice_build, saved: one INSERT for all its channels."""
    return messages_save(notice_build(member=member, template=template, context=context))


def messages_save(messages: list[OutboxMessage]) -> list[OutboxMessage]:
    """Saves rendered messages in one INSERT (their ids are set: PostgreSQL and SQLite return them)."""
    return OutboxMessage.objects.bulk_create(messages) if messages else []


def outbox_dispatch(messages: Iterable[OutboxMessage], *, bulk: bool = False) -> None:
    """Enqueues the delivery of `messages`. Where tasks wait in the database (a backend that can
    defer) and there are many, a registry import's thousands of notices say, one task delivers
    TASK_BATCH of them (`outbox_deliver_many`) and the tasks are enqueued DISPATCH_CHUNK to a
    transaction: a task row and a commit per batch, not per message. A temporary code always gets a
    task of its own, which goes first (`_delivery`). `bulk` (a registry import's notices) puts the
    batches after every other message waiting, so a member's own notices (a lock, a new PIN) are not
    held behind a backlog. A chunk that fails to enqueue is lost as a whole and logged once: its rows
    stay pending, and the sweep enqueues them."""
    from oficina.notify.tasks import deliver_outbox_message, deliver_outbox_messages

    pending = list(messages)
    if (bulk or len(pending) > 1) and deliver_outbox_message.get_backend().supports_defer:
        jobs: list[tuple[Task[Any, str], Any, list[int]]] = [
            (_delivery(message), message.pk, [message.pk])
            for message in pending
            if message.kind in CODE_KINDS
        ]
        batches = deliver_outbox_messages.using(priority=BULK_PRIORITY) if bulk else deliver_outbox_messages
        rest = [message.pk for message in pending if message.kind not in CODE_KINDS]
        for start in range(0, len(rest), TASK_BATCH):
            batch = rest[start : start + TASK_BATCH]
            jobs.append((batches, batch, batch))
        for start in range(0, len(jobs), DISPATCH_CHUNK):
            chunk = jobs[start : start + DISPATCH_CHUNK]
            try:
                with transaction.atomic():
                    for delivery, argument, _ in chunk:
                        delivery.enqueue(argument)
            except Exception:
                logger.exception(
                    "could not enqueue outbox messages %s to %s; the sweep will retry",
                    chunk[0][2][0],
                    chunk[-1][2][-1],
                )
        return
    for message in pending:
        try:
            _delivery(message).enqueue(message.pk)
        except Exception:  # the row is durable; the sweep enqueues it again
            logger.exception("could not enqueue outbox message %s; the sweep will retry", message.pk)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(settings.OUTBOX_RETRY_BASE_SECONDS * 3 ** (attempts - 1), 900))


def outbox_expire(*, member: Member, kind: str, reason: str) -> int:
    """Expires the member's undelivered messages of `kind` and erases them; call it in the transaction
    that makes them pointless. Nothing sends an expired message: the sweep and "Reintentar" pass it
    by, a queued task finds it final, and a worker already sending it cannot put it back in the queue
    (its own updates require its claim, see `outbox_deliver`)."""
    return OutboxMessage.objects.filter(member=member, kind=kind, status__in=UNDELIVERED).update(
        status=OutboxMessage.Status.EXPIRED,
        body="",
        html="",
        lease_until=None,
        next_attempt_at=None,
        last_error=reason,
    )


def _finish(message: OutboxMessage, status: str, *, where: Q | None = None, **fields: Any) -> bool:
    """Makes the message final (if `where` still holds); False when it did not."""
    kept = status == OutboxMessage.Status.FAILED and message.kind not in CODE_KINDS
    content = {} if kept else {"body": "", "html": ""}
    updated = OutboxMessage.objects.filter(Q(pk=message.pk) if where is None else where).update(
        status=status, lease_until=None, next_attempt_at=None, **content, **fields
    )
    return updated == 1


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
        if (
            message.status == OutboxMessage.Status.RETRYING
            and message.next_attempt_at
            and message.next_attempt_at > now
        ):
            # Not due: the sweep and the scheduled retry may both hold a task for it; only the one
            # that comes when the backoff has passed may spend an attempt.
            return "not due"
        if message.expires_at and now >= message.expires_at:
            _finish(message, OutboxMessage.Status.EXPIRED, last_error="venció antes de poder enviarse")
            event_record(
                "message_expired", member=message.member, channel=message.channel, message_kind=message.kind
            )
            return OutboxMessage.Status.EXPIRED
        # The claim holds only if the row is still as read (never final): `attempts` numbers the claims.
        claimed = OutboxMessage.objects.filter(
            pk=message.pk, status=message.status, attempts=message.attempts
        ).update(
            status=OutboxMessage.Status.SENDING,
            attempts=message.attempts + 1,
            lease_until=now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS),
        )
        if claimed != 1:
            return "skipped"
        message.attempts += 1
    # From here on, a write needs our claim: the message may have been expired meanwhile (a newer
    # code) or, our lease run out, taken by another worker.
    ours = Q(pk=message.pk, attempts=message.attempts, status=OutboxMessage.Status.SENDING)
    try:
        _transmit(message)
    except (SmsError, OSError) as exc:
        permanent = exc.permanent if isinstance(exc, SmsError) else smtp_is_permanent(exc)
        return _failed_try(message, ours, error=delivery_error_text(exc), permanent=permanent)
    except Exception as exc:
        # Not a fault we know (a misconfigured backend, a bug): counted like a transient one, so the
        # attempts still run out rather than the lease being taken again forever. Only the type is
        # kept: an unknown error's text might quote the message.
        logger.warning("outbox message %s: unexpected %s while sending", message.pk, type(exc).__name__)
        return _failed_try(message, ours, error=f"{type(exc).__name__} (error inesperado)", permanent=False)
    # Handed over: sent, even if it was expired while in the gateway's hands.
    delivered = Q(
        pk=message.pk,
        attempts=message.attempts,
        status__in=(OutboxMessage.Status.SENDING, OutboxMessage.Status.EXPIRED),
    )
    if not _finish(
        message, OutboxMessage.Status.SENT, where=delivered, sent_at=timezone.now(), last_error=""
    ):
        return "overtaken"
    return OutboxMessage.Status.SENT


def outbox_stop() -> None:
    """Asks a batch being delivered in this process to stop after the message in hand (the worker's
    stop signal: with the gateway hanging, a batch's twenty timeouts would hold a stop for minutes).
    The messages left stay pending, and the sweep enqueues them again."""
    _stopping.set()


def outbox_deliver_many(*, message_ids: Iterable[int]) -> str:
    """Delivers messages one after the other, each as `outbox_deliver` would on its own; a fault with
    one (the database, a bug) is logged and the next is tried: a message left undelivered stays in
    the outbox, and the sweep enqueues it again. Returns how many ended in each status ("left": not
    tried, the worker is stopping)."""
    outcomes: Counter[str] = Counter()
    for message_id in message_ids:
        if _stopping.is_set():
            outcomes["left"] += 1
            continue
        try:
            outcomes[outbox_deliver(message_id=message_id)] += 1
        except Exception:
            logger.exception("could not deliver outbox message %s; the sweep will retry", message_id)
            outcomes["error"] += 1
    return " ".join(f"{status}={count}" for status, count in sorted(outcomes.items()))


def _failed_try(message: OutboxMessage, ours: Q, *, error: str, permanent: bool) -> str:
    from oficina.audit.services import event_record

    if permanent or message.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        if not _finish(message, OutboxMessage.Status.FAILED, where=ours, last_error=error):
            return "overtaken"
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
    retrying = OutboxMessage.objects.filter(ours).update(
        status=OutboxMessage.Status.RETRYING, next_attempt_at=next_at, lease_until=None, last_error=error
    )
    if retrying != 1:
        return "overtaken"
    logger.info("outbox message %s will be retried at %s: %s", message.pk, next_at.isoformat(), error)
    _retry_later(message, next_at)
    return OutboxMessage.Status.RETRYING


def _retry_later(message: OutboxMessage, when: datetime) -> None:
    from oficina.notify.tasks import deliver_outbox_message

    if not deliver_outbox_message.get_backend().supports_defer:
        return  # the immediate backend cannot wait: the sweep will pick it up
    try:
        _delivery(message).using(run_after=when).enqueue(message.pk)
    except Exception:
        logger.exception("could not schedule the retry of outbox message %s; the sweep will", message.pk)


def _delivery(message: OutboxMessage) -> Task[[int], str]:
    """The delivery task for `message`: a temporary code's goes before every other message waiting
    (a member is at the screen, and the code expires in minutes), e.g. before the thousands of
    notices a registry import queues. The others keep their order."""
    from oficina.notify.tasks import deliver_outbox_message

    if message.kind in CODE_KINDS:
        return deliver_outbox_message.using(priority=CODE_PRIORITY)
    return deliver_outbox_message


def outbox_retry(*, message: OutboxMessage) -> bool:
    """An operator's "Reintentar" on a failed notice: back to pending, enqueued again for one more
    attempt. Never a message that carried a temporary code (erased; the member asks for a new code)."""
    if message.kind in CODE_KINDS:
        return False
    retried = (
        OutboxMessage.objects.filter(pk=message.pk, status=OutboxMessage.Status.FAILED)
        .exclude(body="")
        .update(status=OutboxMessage.Status.PENDING, last_error="")
    )
    if retried != 1:
        return False
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
