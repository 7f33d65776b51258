"""What an operator does for a member at the counter. Each action is one audited service.

Every action records an audit event whose kind starts with "operator_" and whose data names the
staff user (`operator`); no event holds a PIN, a code or a message body.
"""

from __future__ import annotations

from copy import copy
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from oficina.audit.models import Event
from oficina.audit.services import event_record
from oficina.consent.models import PolicyVersion
from oficina.consent.services import policy_publish, text_sha256
from oficina.errors import throttled_record, wait_in_words
from oficina.lib.ratelimit import Throttled, ratelimit_consume, ratelimit_forget
from oficina.members.models import Member
from oficina.notify.models import OutboxMessage
from oficina.notify.outbox import message_queue, notice_queue, outbox_dispatch, outbox_retry

RESET_HELP_TEMPLATE = "operator_reset_help"
CONTACT_NOTICE_TEMPLATE = "operator_contact_changed"
UNLOCK_NOTICE_TEMPLATE = "operator_unlocked"


class OperatorActionRefused(Exception):
    """The action does not apply to this member; ``str(error)`` is a Spanish sentence for the operator,
    and `bulk` why, as a list action counts the members it refused («… no recibieron nada: …»)."""

    def __init__(self, message: str, *, bulk: str) -> None:
        super().__init__(message)
        self.bulk = bulk


DISABLED = "están deshabilitados"


def operator_name(request: HttpRequest) -> str:
    return request.user.get_username()


def operator_event(kind: str, *, request: HttpRequest, member: Member | None = None, **data: Any) -> Event:
    return event_record(kind, request=request, member=member, operator=operator_name(request), **data)


def staff_change_record(
    obj: Any,
    *,
    action: str,
    fields: list[str],
    request: HttpRequest | None = None,
    operator: str = "",
    granted: dict[str, Any] | None = None,
) -> Event:
    """`operator_staff_changed`: who may operate changed (a user, a group, a TOTP device): the model,
    the object, added, changed or deleted, and the labels of the fields changed, never a value (no
    password hash, no device key). What was granted or taken away is named, though: `granted` holds the
    groups (by name) and permissions (as `app.codename`) added and removed, e.g. ``{"groups_added":
    ["Supervisores"]}`` (backoffice/admin.py::StaffChangesAudited.save_related). By the operator of
    `request`, or by `operator` (a command)."""
    return event_record(
        "operator_staff_changed",
        request=request,
        operator=operator_name(request) if request is not None else operator,
        model=obj._meta.label_lower,
        object_id=str(obj.pk),
        object=str(obj)[:150],
        action=action,
        fields=fields,
        **(granted or {}),
    )


def member_unlock(*, request: HttpRequest, member: Member) -> None:
    """Opens a PIN locked by wrong attempts or by the member's own "Bloquear mi acceso".

    The member is told on every channel when it opened something: undoing a member's own block, or
    the lock that stopped someone guessing their PIN, must not go unseen by the member if the
    operator was deceived at the counter or is the threat (T7; review, 2026-12-06: it sent nothing)."""
    notices: list[OutboxMessage] = []
    with transaction.atomic():
        # What the event says was there is what the UPDATE undoes, read under its lock: not the
        # operator's copy, loaded with the page (the member may have locked themselves since, or another
        # operator unlocked them).
        held = Member.objects.select_for_update().get(pk=member.pk)  # its contacts, too, are the row's
        Member.objects.filter(pk=member.pk).update(
            locked_at=None, self_blocked_at=None, failed_pin_attempts=0, updated_at=timezone.now()
        )
        operator_event(
            "operator_unlock",
            request=request,
            member=member,
            was_locked=held.locked_at is not None,
            was_self_blocked=held.self_blocked_at is not None,
            failed_pin_attempts=held.failed_pin_attempts,
        )
        opened = held.locked_at is not None or held.self_blocked_at is not None
        if opened:
            notices = notice_queue(member=held, template=UNLOCK_NOTICE_TEMPLATE)
    outbox_dispatch(notices)
    if opened:
        # The wrong PINs that locked it also filled the cédula's PIN limit (`pin`, 5 in 5 minutes): the
        # member, told they may sign in, met «Demasiados intentos» (operators' walk-through, 2026-12-06).
        # The lock allows 5 wrong PINs again as it is; the per-address limits keep counting.
        ratelimit_forget(action="pin", key=held.document)


def member_disable(*, request: HttpRequest, member: Member) -> None:
    """The member can no longer sign in (they look like an unknown cédula) and their session ends now."""
    _session_end_with(
        request=request,
        member=member,
        event="operator_disable",
        status=Member.Status.DISABLED,
        updated_at=timezone.now(),
    )


def member_session_end(*, request: HttpRequest, member: Member) -> bool:
    """Ends the member's open office session (a lost phone, a shared computer) without touching their
    access. Returns whether there was one."""
    return _session_end_with(request=request, member=member, event="operator_session_end")


def member_sessions_end(
    *, queryset: QuerySet[Member], operator: str, request: HttpRequest | None = None
) -> int:
    """Ends the open office session of every member in `queryset` (all of them, after a suspected
    theft of sessions or of SECRET_KEY) with one UPDATE and one `operator_sessions_end` event: the
    operator, how many members were chosen, whether that was every member, and how many sessions
    ended. Returns that number. As for one member, each session ends on its next request (the office
    middleware finds no digest)."""
    with transaction.atomic():
        chosen = queryset.count()
        ended = queryset.exclude(session_digest="").update(session_digest="")
        event_record(
            "operator_sessions_end",
            request=request,
            operator=operator,
            members=chosen,
            all_members=chosen == Member.objects.count(),
            sessions_ended=ended,
        )
    return ended


def _session_end_with(*, request: HttpRequest, member: Member, event: str, **changes: Any) -> bool:
    """Clears the member's session digest together with `changes`, audited as `event`. Returns
    whether there was a session. It ends there: the office middleware refuses it on its next request
    (the session's own data, which only the member's browser can name, expires in the store)."""
    with transaction.atomic():
        digest = (
            Member.objects.select_for_update()
            .filter(pk=member.pk)
            .values_list("session_digest", flat=True)
            .get()
        )
        Member.objects.filter(pk=member.pk).update(session_digest="", **changes)
        operator_event(event, request=request, member=member, session_ended=bool(digest))
    return bool(digest)


def member_enable(*, request: HttpRequest, member: Member) -> None:
    with transaction.atomic():
        Member.objects.filter(pk=member.pk).update(status=Member.Status.ACTIVE, updated_at=timezone.now())
        operator_event("operator_enable", request=request, member=member)


def member_reset_help_send(*, request: HttpRequest, member: Member) -> str:
    """Sends the member, by SMS (or e-mail when they have no mobile), how to get a temporary code
    themselves: "Ingresa tu usuario", then "Olvidé mi clave". Returns the channel used.

    It does not send a code. A temporary code is bound to the browser session that asked for it
    (TemporaryCode.flow_id), so a code asked for from the operator's browser could not be typed in
    the member's; it would also replace any live code of theirs and spend their hourly sending limit.
    """
    if not member.is_active:
        raise OperatorActionRefused(
            "El asociado está deshabilitado: habilítalo antes de enviarle instrucciones.", bulk=DISABLED
        )
    # Counted before anything is sent: any counter operator, or a script in a stolen operator's session,
    # could text one member over and over, or the whole registry a page at a time (50 members per list
    # action), each message the cooperative's cost and each one audited only after it went (review of
    # the operators' side, 2026-12-07).
    for action, key, refusal, bulk in (
        (
            "operator_reset_help",  # per member
            member.document,
            "Ya enviamos instrucciones a este asociado varias veces en poco tiempo: espera {wait} antes de "
            "enviarlas de nuevo.",
            "ya las había recibido varias veces en poco tiempo",
        ),
        (
            "operator_reset_help_sent",  # per operator
            str(request.user.pk),
            "Enviaste instrucciones a muchos asociados en poco tiempo: espera {wait} antes de enviar más.",
            "enviaste instrucciones a muchos asociados en poco tiempo",
        ),
    ):
        try:
            ratelimit_consume(request, action=action, key=key)
        except Throttled as exc:
            throttled_record(request, exc)
            wait = wait_in_words(exc.retry_after)
            raise OperatorActionRefused(refusal.format(wait=wait), bulk=bulk) from exc
    channel = "sms" if member.mobile else "email"
    with transaction.atomic():
        message = message_queue(member=member, channel=channel, template=RESET_HELP_TEMPLATE, context={})
        operator_event("operator_reset_help_sent", request=request, member=member, channel=channel)
    outbox_dispatch([message])
    return channel


def member_contact_update(*, request: HttpRequest, member: Member, mobile: str, email: str) -> list[str]:
    """Saves validated contact data (see forms.MemberContactForm); returns the fields that changed.
    The OLD channels are told, so a change made at the counter by an impostor does not go unseen."""
    before = copy(member)
    changed = [
        name for name, value in (("mobile", mobile), ("email", email)) if getattr(before, name) != value
    ]
    if not changed:
        return []
    with transaction.atomic():
        Member.objects.filter(pk=member.pk).update(mobile=mobile, email=email, updated_at=timezone.now())
        operator_event("operator_contact_changed", request=request, member=member, fields=changed)
        notices = notice_queue(member=before, template=CONTACT_NOTICE_TEMPLATE)
    member.mobile, member.email = mobile, email
    outbox_dispatch(notices)
    return changed


def outbox_message_retry(*, request: HttpRequest, message: OutboxMessage) -> bool:
    """The message back in the queue and the operator's event, together or not at all (its task is a
    row of the same transaction where tasks wait in the database)."""
    with transaction.atomic():
        retried = outbox_retry(message=message)
        operator_event(
            "operator_outbox_retry",
            request=request,
            member=message.member,
            message_id=message.pk,
            channel=message.channel,
            retried=retried,
        )
    return retried


def policy_version_publish(*, request: HttpRequest, version: str, text: str) -> PolicyVersion:
    """A new version: every member is asked to accept it at their next sign-in."""
    try:
        with transaction.atomic():
            policy = policy_publish(version=version, text=text)
            operator_event(
                "operator_policy_published", request=request, version=version, text_sha256=policy.text_sha256
            )
    except (IntegrityError, ValueError):
        # A double click on «Guardar»: both requests passed the form's check that the version is new,
        # and the other one published it first (a 500 here before; review, 2026-12-06). Either both
        # INSERTs met (IntegrityError), or the other one had committed before this one looked, and
        # policy_publish refused the version as published (ValueError: CI found that 500 too). The
        # same text is that publication; another text under the same version is a real conflict.
        published = PolicyVersion.objects.filter(version=version).first()
        if published is None or published.text_sha256 != text_sha256(text):
            raise
        policy = published
    return policy
