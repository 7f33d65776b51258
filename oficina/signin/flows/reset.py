"""Steps 4-6, "Olvidé mi clave": choose a channel, receive a temporary code, type it on the keypad.

Also a member's first access: an imported member has no PIN until they complete this flow.
For an unknown or disabled cédula every step looks the same (decoy masked destinations, the same
"sent" page), costs the same hashing, and nothing is sent or stored.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from oficina.antiphishing.decoys import decoy_for
from oficina.audit.services import event_record
from oficina.lib.masking import mask_email, mask_mobile
from oficina.members.models import Member
from oficina.notify.outbox import message_queue, outbox_dispatch, outbox_expire
from oficina.signin.flows.identify import member_for_signin
from oficina.signin.models import TemporaryCode
from oficina.signin.pin import secret_check, secret_hash

CHANNELS = ("sms", "email")
# Why a code's message still undelivered was withdrawn (the outbox's «último error»).
CODE_USED = "la clave ya fue usada"
CODE_SPENT = "se agotaron los intentos de la clave"


@dataclass(frozen=True)
class Channels:
    """The masked destinations offered on "Confirmación de cuenta"; empty when the member lacks one."""

    sms: str
    email: str

    def offers(self, channel: str) -> bool:
        return bool(getattr(self, channel, "")) if channel in CHANNELS else False


def reset_channels(*, document: str) -> Channels:
    member = member_for_signin(document=document)
    if member is None:
        decoy = decoy_for(document)
        return Channels(sms=decoy.masked_mobile, email=decoy.masked_email)
    return Channels(sms=mask_mobile(member.mobile), email=mask_email(member.email))


def code_generate() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


# A right code of this flow consumed longer ago than this was not consumed by a twin of the request
# that types it again (twins overlap): the request that consumed it lost the session's write.
TWIN_SECONDS = 10


class CodeAlreadyUsed(Exception):
    """The right code of this flow, already consumed: nothing is consumed again and no try is counted
    wrong. Usually a moment ago, by a parallel request of the same session (a double tap on
    «Continuar»); `long_ago` when it was consumed more than TWIN_SECONDS before: by a request of this
    session that failed after the code's commit and before the session's write (the session store or
    the database dropped), so the session still waits for a code that can no longer be used."""

    def __init__(self, *, long_ago: bool = False) -> None:
        super().__init__("code already used")
        self.long_ago = long_ago


@dataclass(frozen=True)
class CodeRequest:
    """`flow_id` binds a code to the browser session; `sent` is False when nothing was sent (unknown
    cédula, or the member's sending limits) — the member sees the same page either way."""

    flow_id: str
    sent: bool


def code_request(
    *, request: HttpRequest, document: str, channel: str, flow_id: str | None = None
) -> CodeRequest:
    """Issues a new code (replacing any earlier one) and queues its message, within the sending limits:
    CODE_SENDS_PER_HOUR and CODE_SENDS_PER_DAY per member, and CODE_RESEND_SECONDS between two sends.
    Each code sent is CODE_MAX_ATTEMPTS guesses at it for whoever asked for it: the daily limit bounds
    what a stranger who knows the cédula may try over days (docs/security.md §2.6). The code and its
    message are saved in one transaction, so "Hemos enviado…" is shown only for a durable message.

    It answers no sooner than CODE_REQUEST_MIN_MS after it started, whoever asked (docs/security.md
    G8): a member's request writes a code, a message and its delivery task, an unknown cédula's
    nothing, and that difference (2.6 ms on SQLite, 5.5 ms on PostgreSQL, measured) told which
    cédulas belong to members in a few requests each.

    `flow_id`: the binding the sign-in flow drew before the page was shown, so that a parallel twin
    of this request (a double tap) binds its session to the same code; a new one when not given."""
    started = time.monotonic()
    result = _code_request(
        request=request, document=document, channel=channel, flow_id=flow_id or secrets.token_urlsafe(24)
    )
    _answer_no_sooner_than_the_floor(started)
    return result


def _answer_no_sooner_than_the_floor(started: float) -> None:
    remaining = started + settings.CODE_REQUEST_MIN_MS / 1000 - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def _code_request(*, request: HttpRequest, document: str, channel: str, flow_id: str) -> CodeRequest:
    code = code_generate()
    code_hash = secret_hash(code)  # paid for unknown cédulas too, so timing tells nothing
    member = member_for_signin(document=document)
    if member is None:
        event_record("code_requested_unknown", request=request, document=document, channel=channel)
        return CodeRequest(flow_id=flow_id, sent=False)
    with transaction.atomic():
        # One code request at a time per member: the limits below are exact even under parallel clicks.
        Member.objects.select_for_update().filter(pk=member.pk).first()
        now = timezone.now()
        today = TemporaryCode.objects.filter(member=member, created_at__gt=now - timedelta(days=1))
        recent = today.filter(created_at__gt=now - timedelta(hours=1))
        latest = recent.order_by("-created_at").values_list("created_at", flat=True).first()
        if (
            recent.count() >= settings.CODE_SENDS_PER_HOUR
            or today.count() >= settings.CODE_SENDS_PER_DAY
            or (latest is not None and (now - latest).total_seconds() < settings.CODE_RESEND_SECONDS)
        ):
            # This very binding's code, sent a moment ago by a parallel twin of this request (a double
            # tap; the binding is drawn when the page is shown): the session is bound to it, as the
            # sibling's is. Answered as sent, or the view kept an earlier request's binding, whose code
            # the sibling's has just replaced. (Review of a4499e0.)
            ours = TemporaryCode.objects.filter(member=member, flow_id=flow_id).live(now).exists()
            event_record("code_send_limited", request=request, member=member, channel=channel)
            return CodeRequest(flow_id=flow_id, sent=ours)
        TemporaryCode.objects.filter(member=member).superseded(now)
        # So is the message of the replaced code, if still undelivered: sent late (after an outage) its
        # dead code would be typed and spend the live code's tries.
        outbox_expire(member=member, kind="temporary_code", reason="reemplazada por una clave nueva")
        expires_at = now + timedelta(seconds=settings.CODE_VALIDITY_SECONDS)
        TemporaryCode.objects.create(
            member=member,
            flow_id=flow_id,
            code_hash=code_hash,
            channel=channel,
            created_at=now,
            expires_at=expires_at,
        )
        message = message_queue(
            member=member,
            channel=channel,
            template="temporary_code",
            context={"code": code},
            expires_at=expires_at,
        )
        event_record("code_sent", request=request, member=member, channel=channel)
    outbox_dispatch([message])
    return CodeRequest(flow_id=flow_id, sent=True)


def code_verify(*, request: HttpRequest, document: str, flow_id: str, code: str) -> Member | None:
    """The member when `code` is this flow's live code; consumes it. None for every failure alike.

    A failure answers no sooner than CODE_REQUEST_MIN_MS after it started, as a code request does:
    a member's wrong code also reads the live code and counts the try on it (a SELECT and an UPDATE),
    an unknown cédula's does neither, and that difference (1.8 ms on SQLite, 4 ms on PostgreSQL,
    measured) told members apart. A right code needs no floor: only its holder can type it.

    Raises CodeAlreadyUsed for the right code of this flow that a parallel request consumed first."""
    started = time.monotonic()
    member = _code_verify(request=request, document=document, flow_id=flow_id, code=code)
    if member is None:
        _answer_no_sooner_than_the_floor(started)
    return member


def _code_verify(*, request: HttpRequest, document: str, flow_id: str, code: str) -> Member | None:
    now = timezone.now()
    member = member_for_signin(document=document)
    live = (
        TemporaryCode.objects.filter(member=member, flow_id=flow_id).live(now).first()
        if member is not None
        else None
    )
    claimed = live is not None and TemporaryCode.objects.try_claimed(live.pk, now)
    if live is None or not claimed:
        # This flow's code used a moment ago (still within its life) by a parallel request of the same
        # session, a double tap: its hash is checked in place of the dummy one, at the same cost.
        used = (
            TemporaryCode.objects.filter(
                member=member, flow_id=flow_id, consumed_at__isnull=False, expires_at__gt=now
            ).first()
            if member is not None and live is None
            else None
        )
        if secret_check(code, used.code_hash if used is not None else None) and used is not None:
            event_record("code_replayed", request=request, member=member)
            assert used.consumed_at is not None
            raise CodeAlreadyUsed(long_ago=(now - used.consumed_at).total_seconds() > TWIN_SECONDS)
        event_record("code_failed", request=request, member=member, document=document)
        return None
    assert member is not None  # a live code is a member's
    if not secret_check(code, live.code_hash):
        with transaction.atomic():
            if TemporaryCode.objects.tries_spent(live.pk):
                # Its last try: the code is dead, and its message, if still waiting for a retry, would
                # only text a dead code (hidden by the failure's floor, like the rest of the work here).
                outbox_expire(member=member, kind="temporary_code", reason=CODE_SPENT)
            event_record("code_failed", request=request, member=member)
        return None
    # Single use: of any number of parallel right answers, one UPDATE wins; it and its event together.
    with transaction.atomic():
        won = TemporaryCode.objects.consumed(live.pk)
        if won:
            # The member has the code: a retry still pending (the gateway took it but its answer was
            # lost) would send it again, and the outbox would keep it in clear until then.
            outbox_expire(member=member, kind="temporary_code", reason=CODE_USED)
            event_record("code_used", request=request, member=member)
    if not won:
        event_record("code_replayed", request=request, member=member)
        raise CodeAlreadyUsed
    return member
