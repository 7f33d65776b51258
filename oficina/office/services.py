"""Changes a signed-in member makes to what guards their access. Each needs a fresh step-up."""

from __future__ import annotations

import time
from copy import copy
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from oficina.audit.services import event_record
from oficina.members.models import Member, session_digest
from oficina.notify.models import OutboxMessage
from oficina.notify.outbox import notice_queue, outbox_dispatch
from oficina.notify.services import SECURITY_CHANGES
from oficina.signin.flows.login import MEMBER_SESSION_KEY, session_auth_hash
from oficina.signin.flows.new_credentials import pin_history_append
from oficina.signin.flows.reset import CODE_SPENT, CODE_USED

STEPUP_KEY = "stepup_at"


def stepup_is_fresh(request: HttpRequest) -> bool:
    data = request.session.get(MEMBER_SESSION_KEY) or {}
    return time.time() - float(data.get(STEPUP_KEY, 0)) <= settings.STEPUP_SECONDS


def stepup_grant(request: HttpRequest) -> None:
    """The PIN was proven again: a new session id, as at sign-in, and the member's one session moves."""
    request.session[MEMBER_SESSION_KEY][STEPUP_KEY] = time.time()
    request.session.cycle_key()  # writes the data under the new key: the request's save has nothing left
    Member.objects.filter(pk=request.session[MEMBER_SESSION_KEY]["id"]).update(
        session_digest=session_digest(request.session.session_key)
    )
    event_record("stepup_ok", request=request, member=getattr(request, "member", None))


def stepup_spend(request: HttpRequest) -> None:
    """One step-up, one change: the next change asks for the PIN again."""
    request.session[MEMBER_SESSION_KEY].pop(STEPUP_KEY, None)
    request.session.modified = True


def _notice(member: Member, change: str) -> list[OutboxMessage]:
    return notice_queue(member=member, template="security_change", context={"what": SECURITY_CHANGES[change]})


def member_pin_change(*, request: HttpRequest, member: Member, pin_hash: str) -> None:
    with transaction.atomic():
        member = Member.objects.select_for_update().get(pk=member.pk)
        member.pin_hash = pin_hash
        member.pin_changed_at = timezone.now()
        member.save(update_fields=["pin_hash", "pin_changed_at", "updated_at"])
        pin_history_append(member=member, pin_hash=pin_hash)
        event_record("pin_changed", request=request, member=member)
        notices = _notice(member, "pin")
    # This session stays open (it proved the PIN); any other one is ended by the new auth hash.
    request.session[MEMBER_SESSION_KEY]["auth"] = session_auth_hash(member)
    request.session.modified = True
    outbox_dispatch(notices)


def member_security_image_change(*, request: HttpRequest, member: Member, image_id: str, phrase: str) -> None:
    with transaction.atomic():
        Member.objects.filter(pk=member.pk).update(
            security_image=image_id, security_phrase=phrase, updated_at=timezone.now()
        )
        event_record("security_image_changed", request=request, member=member)
        notices = _notice(member, "image")
    outbox_dispatch(notices)


def member_contact_change(*, request: HttpRequest, member: Member, mobile: str, email: str) -> None:
    """Saves new contact data and tells the OLD channels, so a hijacker cannot change them silently."""
    before = copy(member)
    with transaction.atomic():
        Member.objects.filter(pk=member.pk).update(mobile=mobile, email=email, updated_at=timezone.now())
        event_record(
            "contact_changed",
            request=request,
            member=member,
            mobile_changed=before.mobile != mobile,
            email_changed=before.email != email,
        )
        notices = _notice(before, "contact")
    outbox_dispatch(notices)


CONTACT_KEY = "contact_change"


def contact_verification_start(*, request: HttpRequest, member: Member, mobile: str, email: str) -> None:
    """Sends a code to the one new destination and keeps the pending change (and the code's hash) in
    the session; nothing about the member changes until the code comes back."""
    from oficina.lib.masking import mask_email, mask_mobile
    from oficina.notify.outbox import message_queue, outbox_expire
    from oficina.signin.flows.reset import code_generate
    from oficina.signin.pin import secret_hash

    channel = "sms" if mobile and mobile != member.mobile else "email"
    target = copy(member)
    target.mobile, target.email = (mobile, "") if channel == "sms" else ("", email)
    code = code_generate()
    request.session[CONTACT_KEY] = {
        "mobile": mobile,
        "email": email,
        "masked": mask_mobile(mobile) if channel == "sms" else mask_email(email),
        "code_hash": secret_hash(code),
        "expires": time.time() + settings.CODE_VALIDITY_SECONDS,
        "attempts": 0,
    }
    with transaction.atomic():
        # The session now holds only this code: an earlier one still undelivered must never arrive.
        outbox_expire(member=member, kind="contact_verify", reason="reemplazado por un código nuevo")
        message = message_queue(
            member=target,
            channel=channel,
            template="contact_verify",
            context={"code": code},
            expires_at=timezone.now() + timedelta(seconds=settings.CODE_VALIDITY_SECONDS),
        )
        event_record("contact_verification_sent", request=request, member=member, channel=channel)
    outbox_dispatch([message])


def contact_verification_pending(request: HttpRequest) -> dict[str, Any] | None:
    pending = request.session.get(CONTACT_KEY)
    return pending if isinstance(pending, dict) else None


def contact_verification_cancel(request: HttpRequest) -> None:
    request.session.pop(CONTACT_KEY, None)


def contact_verification_check(*, request: HttpRequest, code: str) -> str:
    """ "ok", "wrong" or "exhausted" (expired, or CODE_MAX_ATTEMPTS wrong tries: start again)."""
    from oficina.signin.pin import secret_check

    pending = contact_verification_pending(request)
    if pending is None or time.time() > float(pending["expires"]):
        contact_verification_cancel(request)
        return "exhausted"
    pending["attempts"] = int(pending["attempts"]) + 1
    request.session.modified = True
    if secret_check(code, str(pending["code_hash"])):
        _contact_code_end(request, reason=CODE_USED)
        return "ok"
    if pending["attempts"] >= settings.CODE_MAX_ATTEMPTS:
        _contact_code_end(request, reason=CODE_SPENT)
        return "exhausted"
    return "wrong"


def _contact_code_end(request: HttpRequest, *, reason: str) -> None:
    """The code was used or spent: so is its message, if a retry still holds it (in clear)."""
    from oficina.notify.outbox import outbox_expire

    contact_verification_cancel(request)
    member = getattr(request, "member", None)
    if member is not None:
        outbox_expire(member=member, kind="contact_verify", reason=reason)
