"""Changes a signed-in member makes to what guards their access. Each needs a fresh step-up."""

from __future__ import annotations

import secrets
import time
from copy import copy
from datetime import datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from oficina.audit.services import event_record
from oficina.lib.masking import mask_email, mask_mobile
from oficina.lib.sessions import cycle_key_found_gone
from oficina.members.models import Member, session_digest
from oficina.notify.models import OutboxMessage
from oficina.notify.outbox import message_queue, notice_queue, outbox_dispatch, outbox_expire
from oficina.notify.services import SECURITY_CHANGES
from oficina.office.models import ContactCode
from oficina.signin.flows.login import MEMBER_SESSION_KEY, session_auth_hash
from oficina.signin.flows.new_credentials import pin_history_append
from oficina.signin.flows.reset import CODE_SPENT, CODE_USED, code_generate
from oficina.signin.models import SingleUseCodeQuerySet
from oficina.signin.pin import secret_check, secret_hash

STEPUP_KEY = "stepup_at"
STEPUP_TOKEN_KEY = "stepup_token"
STEPUP_EXTENSIONS_KEY = "stepup_extensions"
# WCAG 2.2.1: «Necesito más tiempo» on a change's page starts the step-up's clock again, this many
# times per step-up, as a sign-in flow's (the criterion's "extend" asks for at least ten). Never past
# the session's own absolute end: the middleware ends the session, and the step-up with it. Each is an
# event, as the step-up itself. Running out costs only the PIN: what was typed on a change's page is
# kept across the new «Confirma tu clave» (STEPUP_DRAFT_KEY), never a PIN or a code.
STEPUP_EXTENSIONS = 10
# A change posted after its step-up ended: its page's fields, kept for after the PIN (never a PIN or code).
STEPUP_DRAFT_KEY = "stepup_draft"


def stepup_seconds_left(request: HttpRequest) -> int:
    """What is left of this session's step-up, in whole seconds; 0 when it ended or there is none."""
    data = request.session.get(MEMBER_SESSION_KEY) or {}
    return max(0, int(settings.STEPUP_SECONDS - (time.time() - float(data.get(STEPUP_KEY, 0)))))


def stepup_is_fresh(request: HttpRequest) -> bool:
    """Whether a change may still be made: while a whole second of the step-up is left. The page's
    warning counts from stepup_seconds_left, so a page served fresh never says its time is over."""
    return stepup_seconds_left(request) > 0


def _stepup_extensions_used(data: dict[str, Any]) -> int:
    return int(data.get(STEPUP_EXTENSIONS_KEY, 0))


def stepup_extensions_left(request: HttpRequest) -> int:
    data = request.session.get(MEMBER_SESSION_KEY) or {}
    return max(0, STEPUP_EXTENSIONS - _stepup_extensions_used(data))


def stepup_extend(request: HttpRequest, member: Member) -> bool:
    """«Necesito más tiempo» on a change's page: the step-up's clock starts again, while it is still
    running and STEPUP_EXTENSIONS times at most; an audited event, as the step-up itself (`stepup_ok`).

    The session's count, not an exact database counter: what it bounds is the page's clock, which
    only ever moves to now (parallel twins move it to the same moment); the change itself still
    needs this step-up's token (stepup_spend)."""
    if not stepup_is_fresh(request) or not stepup_extensions_left(request):
        return False
    data = request.session[MEMBER_SESSION_KEY]
    extension = _stepup_extensions_used(data) + 1
    data[STEPUP_KEY] = time.time()
    data[STEPUP_EXTENSIONS_KEY] = extension
    request.session.modified = True
    event_record("stepup_extended", request=request, member=member, extension=extension)
    return True


def stepup_draft_keep(request: HttpRequest, *, target: str, fields: dict[str, str]) -> None:
    """A change posted after its step-up ended: what the member typed, for its page after the PIN."""
    request.session[STEPUP_DRAFT_KEY] = {"target": target, "fields": fields}


def stepup_draft_pending(request: HttpRequest, target: str) -> dict[str, str] | None:
    """The draft «Confirma tu clave» is asked for again with, when it is for `target`."""
    draft = request.session.get(STEPUP_DRAFT_KEY)
    if not isinstance(draft, dict) or draft.get("target") != target:
        return None
    fields = draft.get("fields")
    return {k: v for k, v in fields.items() if isinstance(v, str)} if isinstance(fields, dict) else {}


def stepup_draft_take(request: HttpRequest, target: str) -> dict[str, str] | None:
    """The draft for `target`, once: its page shows it as the member left it; nothing is saved."""
    draft = stepup_draft_pending(request, target)
    if draft is not None:
        request.session.pop(STEPUP_DRAFT_KEY, None)
    return draft


StepUp = Literal["granted", "ended", "twin"]


def stepup_grant(request: HttpRequest) -> StepUp:
    """The PIN was proven again: a new session id, as at sign-in, and the member's one session moves.

    Only from this session: "ended" (and this session is emptied) when it stopped being the member's
    while the PIN was checked (an operator's «Cerrar sesión», a sign-in elsewhere, a reset). An
    unconditional UPDATE here brought an ended session back to life. (Review, 2026-12-06)

    "twin": the id this request came with was already gone when it cycled it, deleted by a parallel
    request of the same browser that proved the PIN first (a double tap on «Continuar» with JavaScript
    off) and moved the session to its own new id. Emptied and answered with a cookie, as "ended" was,
    the twin's answer (the one the browser shows) signed the member out right after the step-up. Now
    it sets no cookie and leaves the browser with its sibling's, and the new id it drew is deleted;
    nothing of the sibling's new id is read or handed out. (Review, 2026-12-06, third session)"""
    token = secrets.token_urlsafe(24)
    before = session_digest(request.session.session_key)
    request.session[MEMBER_SESSION_KEY][STEPUP_KEY] = time.time()
    request.session[MEMBER_SESSION_KEY][STEPUP_TOKEN_KEY] = token
    request.session[MEMBER_SESSION_KEY][STEPUP_EXTENSIONS_KEY] = 0  # a new step-up, its own extensions
    # Writes the data under the new key: the request's save has nothing left.
    gone = cycle_key_found_gone(request.session)
    # The move and its event together, as a sign-in's: a fault between two autocommitted statements
    # left the digest naming a session no browser held, and no event. (Review, 2026-12-06)
    ours = Member.objects.filter(pk=request.session[MEMBER_SESSION_KEY]["id"], session_digest=before)
    with transaction.atomic():
        moved = ours.update(
            session_digest=session_digest(request.session.session_key), stepup_digest=session_digest(token)
        )
        if moved:
            event_record("stepup_ok", request=request, member=getattr(request, "member", None))
    if moved:
        return "granted"
    if gone:
        drawn = request.session.session_key
        type(request.session)().delete(drawn)  # never sent to anyone
        request.session.modified = False  # no cookie: the browser keeps its sibling's
        return "twin"
    request.session.flush()
    return "ended"


def stepup_spend(request: HttpRequest, member: Member) -> bool:
    """One step-up, one change: the next change asks for the PIN again. Call it in the change's
    transaction, before the change; False means change nothing.

    Spent by one conditional UPDATE, so that of parallel requests of one session (a double tap, or
    copies of the cookie) one change wins; and only while this session is still the member's, so that
    a change waiting on the row while a reset (or an operator) ended it cannot undo that reset. The
    session's own copy, which each parallel request reads as it was, is only the page's clock."""
    row = _stepup_row(request, member, stepup_forget(request))
    return row is not None and row.update(stepup_digest="") == 1


def stepup_unspent(request: HttpRequest, member: Member) -> bool:
    """Whether this session's step-up is still there to spend: no parallel twin of this request (a
    double tap) spent it on a change a moment ago. A read, for a change's page sent with nothing
    changed, which must tell "nothing changed" from "the twin already saved this"."""
    row = _stepup_row(request, member, (request.session.get(MEMBER_SESSION_KEY) or {}).get(STEPUP_TOKEN_KEY))
    return row is not None and row.exists()


def _stepup_row(request: HttpRequest, member: Member, token: object) -> QuerySet[Member] | None:
    """The member's row while `token` is its unspent step-up and this session is still the member's;
    None when the session holds no step-up to match."""
    if not isinstance(token, str) or not token or not request.session.session_key:
        return None
    return Member.objects.filter(
        pk=member.pk,
        session_digest=session_digest(request.session.session_key),
        stepup_digest=session_digest(token),
    )


def stepup_forget(request: HttpRequest) -> object:
    """This session's copy of the step-up, dropped (a parallel twin spent it); returns its token."""
    data = request.session[MEMBER_SESSION_KEY]
    data.pop(STEPUP_KEY, None)
    data.pop(STEPUP_EXTENSIONS_KEY, None)
    request.session.modified = True
    return data.pop(STEPUP_TOKEN_KEY, None)


def _notice(member: Member, change: str) -> list[OutboxMessage]:
    return notice_queue(member=member, template="security_change", context={"what": SECURITY_CHANGES[change]})


def member_pin_change(*, request: HttpRequest, member: Member, pin_hash: str) -> bool:
    """False, and nothing changed, when the step-up was spent already or this session ended."""
    with transaction.atomic():
        if not stepup_spend(request, member):
            return False
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
    return True


def member_security_image_change(*, request: HttpRequest, member: Member, image_id: str, phrase: str) -> bool:
    """False, and nothing changed, when the step-up was spent already or this session ended."""
    with transaction.atomic():
        if not stepup_spend(request, member):
            return False
        Member.objects.filter(pk=member.pk).update(
            security_image=image_id, security_phrase=phrase, updated_at=timezone.now()
        )
        event_record("security_image_changed", request=request, member=member)
        notices = _notice(member, "image")
    outbox_dispatch(notices)
    return True


def member_contact_change(*, request: HttpRequest, member: Member, mobile: str, email: str) -> bool:
    """Saves new contact data and tells the OLD channels, so a hijacker cannot change them silently.
    False, and nothing changed, when the step-up was spent already or this session ended."""
    with transaction.atomic():
        if not stepup_spend(request, member):
            return False
        notices = _contact_change_record(request=request, member=member, mobile=mobile, email=email)
    outbox_dispatch(notices)
    return True


def _contact_change_record(
    *, request: HttpRequest, member: Member, mobile: str, email: str
) -> list[OutboxMessage]:
    """The change, its event and its notices to the old channels; the caller holds the transaction."""
    before = copy(member)
    Member.objects.filter(pk=member.pk).update(mobile=mobile, email=email, updated_at=timezone.now())
    event_record(
        "contact_changed",
        request=request,
        member=member,
        mobile_changed=before.mobile != mobile,
        email_changed=before.email != email,
    )
    return _notice(before, "contact")


CONTACT_KEY = "contact_change"
# A request for the same change this soon after another of the same session is its twin (a double tap)
TWIN_SECONDS = 10


def contact_verification_start(*, request: HttpRequest, member: Member, mobile: str, email: str) -> None:
    """Sends a code to the one new destination and keeps the pending change (and the code's hash) in a
    ContactCode bound to this session; nothing about the member changes until the code comes back."""
    channel = "sms" if mobile and mobile != member.mobile else "email"
    target = copy(member)
    target.mobile, target.email = (mobile, "") if channel == "sms" else ("", email)
    code = code_generate()
    # Drawn from this step-up's token and the new contact, not at random: a parallel twin of this
    # request (a double tap on «Continuar») reads the same session and gets the same binding, and
    # finds the code its sibling sent. Each drew its own: two messages with two codes, and only the
    # one whose session was saved last worked, so the first to arrive read «El código no es
    # correcto». (Review, 2026-12-06)
    token = (request.session.get(MEMBER_SESSION_KEY) or {}).get(STEPUP_TOKEN_KEY)
    flow_id = (
        salted_hmac(
            "oficina.office.contact_flow", f"{token}|{mobile}|{email}", algorithm="sha256"
        ).hexdigest()
        if isinstance(token, str) and token
        else secrets.token_urlsafe(32)
    )
    now = timezone.now()
    with transaction.atomic():
        # One request at a time per member (as a temporary code's): parallel requests each ended the
        # codes before them, saw none of the others' yet, and left as many live codes. (Review, 2026-12-06)
        Member.objects.select_for_update().filter(pk=member.pk).first()
        sent = ContactCode.objects.filter(
            member=member, flow_id=flow_id, created_at__gte=now - timedelta(seconds=TWIN_SECONDS)
        ).live(now)
        if sent.filter(attempts__lt=settings.CODE_MAX_ATTEMPTS).exists():
            # The twin's code: this session is bound to it, and nothing is sent again. Only a moment
            # after it: the same contact sent again later (the message did not arrive) gets a new code.
            request.session[CONTACT_KEY] = flow_id
            return
        # Only the newest code lives: an earlier one, and its message if still undelivered, are dead.
        _contact_codes_end(member, now, reason="reemplazado por un código nuevo")
        ContactCode.objects.create(
            member=member,
            flow_id=flow_id,
            channel=channel,
            mobile=mobile,
            email=email,
            previous_mobile=member.mobile,
            previous_email=member.email,
            code_hash=secret_hash(code),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.CODE_VALIDITY_SECONDS),
        )
        message = message_queue(
            member=target,
            channel=channel,
            template="contact_verify",
            context={"code": code},
            expires_at=now + timedelta(seconds=settings.CODE_VALIDITY_SECONDS),
        )
        event_record("contact_verification_sent", request=request, member=member, channel=channel)
    request.session[CONTACT_KEY] = flow_id
    outbox_dispatch([message])


def _live_contact_codes(request: HttpRequest, member: Member) -> SingleUseCodeQuerySet:
    flow_id = request.session.get(CONTACT_KEY)
    return ContactCode.objects.filter(
        member=member, flow_id=flow_id if isinstance(flow_id, str) else ""
    ).live(timezone.now())


def contact_verification_pending(request: HttpRequest, member: Member) -> str | None:
    """Where the code of the change this session is confirming went, masked, while the code is alive
    and has tries left; None when there is no such change."""
    live = _live_contact_codes(request, member).filter(attempts__lt=settings.CODE_MAX_ATTEMPTS).first()
    if live is None:
        return None
    return mask_mobile(live.mobile) if live.channel == ContactCode.Channel.SMS else mask_email(live.email)


def contact_verification_saved(request: HttpRequest, member: Member) -> bool:
    """Whether the change this session is confirming was saved already, by a parallel twin of this
    request (a double tap on «Continuar» with the code): its code was used, and the member's contact
    is the pair it confirmed. A read, for the twin to say what its sibling did."""
    flow_id = request.session.get(CONTACT_KEY)
    if not isinstance(flow_id, str) or not flow_id:
        return False
    used = (
        ContactCode.objects.filter(member=member, flow_id=flow_id, consumed_at__isnull=False)
        .values_list("mobile", "email")
        .first()
    )
    return used is not None and Member.objects.filter(pk=member.pk, mobile=used[0], email=used[1]).exists()


def contact_verification_cancel(request: HttpRequest, member: Member) -> None:
    """«Regresar»: the change is dropped and its code, and the code's message if still waiting, die."""
    with transaction.atomic():
        _contact_codes_end(member, timezone.now(), reason="el asociado canceló el cambio")
    request.session.pop(CONTACT_KEY, None)


def _contact_codes_end(member: Member, now: datetime, *, reason: str) -> None:
    """The member's codes not yet used die, and so does their message if still undelivered (in clear)."""
    ContactCode.objects.filter(member=member).superseded(now)
    outbox_expire(member=member, kind="contact_verify", reason=reason)


def contact_verification_check(*, request: HttpRequest, member: Member, code: str) -> str:
    """ "ok" (the change is saved and the old channels told), "wrong", "exhausted" (expired, or
    CODE_MAX_ATTEMPTS wrong tries: start again), "changed" (the member's contact is no longer the one
    the change was asked from: nothing saved, the step-up kept, start again), "twin" (a parallel
    submission of the right code saved this very change: nothing saved here, and the member is told
    it was saved; the view ends the change's session state, as it does for a twin it meets itself)
    or "used" (the step-up was spent by another change, or this session ended meanwhile: nothing
    saved here).

    Each try is claimed by one conditional UPDATE before the hash is checked, as a temporary code's:
    any number of parallel submissions get CODE_MAX_ATTEMPTS checks in all, and one right answer saves
    the change once."""
    live = _live_contact_codes(request, member).first()
    claimed = live is not None and ContactCode.objects.try_claimed(live.pk, timezone.now())
    if live is None or not claimed:
        if contact_verification_saved(request, member):
            return "twin"
        if live is None or not ContactCode.objects.filter(pk=live.pk, consumed_at__isnull=False).exists():
            request.session.pop(CONTACT_KEY, None)
            return "exhausted"
        return "used"
    if not secret_check(code, live.code_hash):
        if ContactCode.objects.tries_spent(live.pk):
            outbox_expire(member=member, kind="contact_verify", reason=CODE_SPENT)
            request.session.pop(CONTACT_KEY, None)
            return "exhausted"
        return "wrong"
    with transaction.atomic():
        # The pair typed on the contact page replaces the contact shown there, and only that one: a
        # change made meanwhile (an operator's at the counter, with the member in front of them) is
        # not undone by it. Checked under the row's lock, so no change lands between. (Review, 2026-12-06)
        current = (
            Member.objects.select_for_update().filter(pk=member.pk).values_list("mobile", "email").first()
        )
        if current != (live.previous_mobile, live.previous_email):
            # A double tap: both requests claimed a try and checked the code before either saved; the
            # sibling saved it while this one waited on the row. What changed the contact is this very
            # change, and the browser shows this answer: «no guardamos el cambio» was untrue.
            if contact_verification_saved(request, member):
                return "twin"
            _contact_codes_end(member, timezone.now(), reason="los datos de contacto cambiaron")
            request.session.pop(CONTACT_KEY, None)
            return "changed"
        # The step-up first: the change is its one change, and this session must still be the member's.
        won = stepup_spend(request, member) and ContactCode.objects.consumed(live.pk)
        if won:
            # The member has the code: a retry still pending would only text it again, in clear.
            outbox_expire(member=member, kind="contact_verify", reason=CODE_USED)
            notices = _contact_change_record(
                request=request, member=member, mobile=live.mobile, email=live.email
            )
    request.session.pop(CONTACT_KEY, None)
    if not won:
        return "used"
    outbox_dispatch(notices)
    return "ok"
