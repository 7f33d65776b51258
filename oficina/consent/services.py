from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.http import HttpRequest
from django.template import engines
from django.utils import timezone

from oficina.audit.services import event_record
from oficina.consent.models import Consent, ConsentRevocation, DataRequest, PolicyVersion
from oficina.lib.client import client_ip, user_agent
from oficina.lib.dates import COLOMBIA
from oficina.members.models import Member
from oficina.notify.models import OutboxMessage
from oficina.notify.outbox import notice_queue, outbox_dispatch

POLICY_TEXTS = Path(__file__).resolve().parent / "policy_texts"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def policy_render(template_text: str) -> str:
    """Fills the cooperative's identity into a policy template; the result is what is stored and shown."""
    context = {
        "cooperative": {
            "name": settings.COOPERATIVE_NAME,
            "nit": settings.COOPERATIVE_NIT,
            "address": settings.COOPERATIVE_ADDRESS,
            "phone": settings.COOPERATIVE_PHONE,
            "email": settings.COOPERATIVE_EMAIL,
        }
    }
    return engines["django"].from_string(template_text).render(context).strip()


def policy_publish(*, version: str, text: str) -> PolicyVersion:
    """Publishes a new version; members who accepted an older one are asked again at next sign-in."""
    if PolicyVersion.objects.filter(version=version).exists():
        raise ValueError(f"La versión {version!r} ya fue publicada; una versión publicada no cambia.")
    return PolicyVersion.objects.create(
        version=version, text=text, text_sha256=text_sha256(text), published_at=timezone.now()
    )


def policy_current() -> PolicyVersion | None:
    return PolicyVersion.objects.order_by("-published_at", "-id").first()


def policy_shipped() -> PolicyVersion:
    """Version 1 as shipped, rendered with this cooperative's identity; not saved."""
    text = policy_render((POLICY_TEXTS / "v1.html").read_text(encoding="utf-8"))
    return PolicyVersion(version="1", text=text, text_sha256=text_sha256(text), published_at=timezone.now())


def policy_current_or_default() -> PolicyVersion:
    """The current policy. `migrate` publishes version 1; should the table be empty anyway, the shipped
    text is returned unsaved (a GET never writes) and published when a member accepts it."""
    return policy_current() or policy_shipped()


def policy_ensure_published(policy: PolicyVersion) -> PolicyVersion:
    """The policy as a saved row (publishing the shipped version 1 if it never was)."""
    if policy.pk is not None:
        return policy
    with transaction.atomic():
        existing = PolicyVersion.objects.filter(version=policy.version).first()
        return existing or policy_publish(version=policy.version, text=policy.text)


def _revoked_since() -> Exists:
    """SQL for "a revocation of this consent's member (OuterRef) was granted at or after it was given"."""
    return Exists(
        ConsentRevocation.objects.filter(member=OuterRef("member"), revoked_at__gte=OuterRef("accepted_at"))
    )


def member_has_standing_consent(member_id: int) -> bool:
    """Has the member an authorisation, of any version, that no granted revocation has ended?"""
    return Consent.objects.filter(member_id=member_id).exclude(_revoked_since()).exists()


def member_accepted_text(member_id: int, policy: PolicyVersion) -> bool:
    """Did the member ever accept this very text (revoked since or not)? Asked again for a text they
    accepted, they are there because the data officer granted their revocation, not because the policy
    changed."""
    return Consent.objects.filter(member_id=member_id, policy=policy, text_sha256=policy.text_sha256).exists()


def consent_current_exists() -> Exists:
    """SQL for "this member (OuterRef pk) accepted the newest published text, and no revocation was
    granted since", to annotate a member query with (the sign-in folds the check into the member lookup
    it makes anyway)."""
    current = PolicyVersion.objects.order_by("-published_at", "-id").values("id", "text_sha256")[:1]
    return Exists(
        Consent.objects.filter(
            member=OuterRef("pk"),
            policy_id__in=current.values("id"),
            text_sha256__in=current.values("text_sha256"),
        ).exclude(_revoked_since())
    )


def member_needs_consent(member: Member) -> bool:
    """Has the member not accepted the newest published text? Read from the member's own query when it
    was annotated with consent_current_exists() as `has_current_consent`; one query otherwise."""
    annotated = getattr(member, "has_current_consent", None)
    if annotated is not None:
        return not annotated
    return not Member.objects.filter(pk=member.pk).filter(consent_current_exists()).exists()


def consent_record(*, member: Member, policy: PolicyVersion, request: HttpRequest) -> Consent:
    """The member's "Permitir": the consent row and its `consent_given` audit event, together or not
    at all, whether at a first access or when a newer version is accepted."""
    policy = policy_ensure_published(policy)
    with transaction.atomic():
        consent = Consent.objects.create(
            member=member,
            policy=policy,
            text_sha256=policy.text_sha256,
            accepted_at=timezone.now(),
            ip_address=client_ip(request),
            user_agent=user_agent(request),
        )
        event_record("consent_given", request=request, member=member, policy=policy.version)
    return consent


DATA_REQUESTS_OPEN_MAX = 5  # requests still in process a member may have at once
DATA_REQUEST_TWIN_SECONDS = 60  # the same request again within this is its double submit, filed once
CONSULT_BUSINESS_DAYS = 10  # Ley 1581, art. 14
CLAIM_BUSINESS_DAYS = 15  # art. 15
# The law's days are Colombia's (one zone, no daylight saving), whatever TIME_ZONE the pages use: a
# request filed at 9 p.m. in Bogotá is already "tomorrow" in UTC, and a deadline counted from there
# would be a business day later than the law's.
LEGAL_TIME_ZONE = COLOMBIA


class DataRequestRefused(Exception):
    """The request cannot be filed; ``str(error)`` is a Spanish sentence fit to show the member."""


def business_days_after(day: date, count: int) -> date:
    """The date `count` business days after `day`, counting Monday to Friday. Colombian public
    holidays are counted as business days, so the date is never later than the legal deadline; the
    data officer may answer until the real one."""
    while count:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def data_request_file(*, request: HttpRequest, member: Member, kind: str, detail: str) -> DataRequest:
    """Records a member's request (and its audit event, which names the kind, not the text) with the
    date by which the cooperative must answer."""
    if kind not in DataRequest.Kind.values:
        raise ValueError(f"unknown data request kind {kind!r}")
    with transaction.atomic():
        # One member's requests are filed one at a time, so the limit below holds under a double submit.
        Member.objects.select_for_update().filter(pk=member.pk).first()
        now = timezone.now()
        # The same request again a moment later is one request: a double tap on «Enviar» (two POSTs,
        # no JavaScript) filed two, two numbers for the data officer to answer and two of the member's
        # open requests spent. Its twin is answered with the first one's number. (Review, 2026-12-06)
        twin = DataRequest.objects.filter(
            member=member,
            kind=kind,
            detail=detail,
            status=DataRequest.Status.RECEIVED,
            received_at__gte=now - timedelta(seconds=DATA_REQUEST_TWIN_SECONDS),
        ).first()
        if twin is not None:
            return twin
        open_requests = DataRequest.objects.filter(member=member, status=DataRequest.Status.RECEIVED).count()
        if open_requests >= DATA_REQUESTS_OPEN_MAX:
            raise DataRequestRefused(
                f"Tienes {open_requests} solicitudes en trámite. Espera nuestra respuesta antes de enviar "
                f"otra, o llámanos al {settings.COOPERATIVE_PHONE}."
            )
        days = CLAIM_BUSINESS_DAYS if kind in DataRequest.CLAIMS else CONSULT_BUSINESS_DAYS
        data_request = DataRequest.objects.create(
            member=member,
            kind=kind,
            detail=detail,
            received_at=now,
            due_on=business_days_after(timezone.localdate(now, LEGAL_TIME_ZONE), days),
        )
        event_record(
            "data_request_filed", request=request, member=member, request_kind=kind, number=data_request.pk
        )
    return data_request


def _officer_event(
    kind: str, data_request: DataRequest, request: HttpRequest, operator: str, **data: Any
) -> None:
    """The data officer's event on a request: the member, the officer and the request's number."""
    event_record(
        kind, request=request, member=data_request.member, operator=operator, number=data_request.pk, **data
    )


def data_request_extensible(data_request: DataRequest) -> bool:
    """May its term still be extended: in process, never extended, and its term not yet over (the law
    asks for the member to be told before it ends), the day counted in Colombia."""
    today = timezone.localdate(timezone.now(), LEGAL_TIME_ZONE)
    return (
        data_request.status == DataRequest.Status.RECEIVED
        and data_request.extended_at is None
        and today <= data_request.due_on
    )


def data_request_extend(
    *, request: HttpRequest, data_request: DataRequest, reason: str, operator: str
) -> bool:
    """The officer extends the term once, with its reasons (Ley 1581 art. 14: 5 more business days for a
    consulta; art. 15: 8 for a reclamo): the new date is in `due_on` (the first in `first_due_on`),
    audited, and the member told on their channels to read the reasons and the date in the office.
    False when it can no longer be extended (answered, extended already, or its term over)."""
    if not data_request_extensible(data_request):
        return False
    extra = (
        DataRequest.CLAIM_EXTENSION_DAYS
        if data_request.kind in DataRequest.CLAIMS
        else DataRequest.CONSULT_EXTENSION_DAYS
    )
    until = business_days_after(data_request.due_on, extra)
    notices: list[OutboxMessage] = []
    with transaction.atomic():
        extended = DataRequest.objects.filter(
            pk=data_request.pk,
            status=DataRequest.Status.RECEIVED,
            extended_at__isnull=True,
            due_on=data_request.due_on,
        ).update(
            first_due_on=data_request.due_on,
            due_on=until,
            extension_reason=reason,
            extended_at=timezone.now(),
            extended_by=operator,
        )
        if extended:
            _officer_event(
                "operator_data_request_extended", data_request, request, operator, until=until.isoformat()
            )
            notices = notice_queue(
                member=data_request.member,
                template="data_request_extended",
                context={"number": data_request.pk, "until": until},
            )
    outbox_dispatch(notices)
    return bool(extended)


REVOCATION_GRANTED = "concedida"
REVOCATION_DENIED = "negada"


def data_request_answer(
    *,
    request: HttpRequest,
    data_request: DataRequest,
    answer: str,
    operator: str,
    revocation: str | None = None,
) -> bool:
    """The data officer's answer: the request is answered once, audited, and the member told on every
    channel they have to read it in the office (the answer itself may hold personal data: it stays
    there). False when it already was answered.

    A request to revoke the authorisation carries the officer's decision (`revocation`): granted, it
    is a ConsentRevocation in the ledger, in the same transaction: the member's consents so far no
    longer count, their open office session ends now, and the next sign-in asks for a new «Permitir»
    (the law may keep data the cooperative must hold: a denial explains why in the answer)."""
    if data_request.kind == DataRequest.Kind.REVOKE:
        if revocation not in (REVOCATION_GRANTED, REVOCATION_DENIED):
            raise ValueError("a revocation request needs the officer's decision")
    else:
        revocation = None
    notices: list[OutboxMessage] = []
    now = timezone.now()
    with transaction.atomic():
        answered = DataRequest.objects.filter(pk=data_request.pk, status=DataRequest.Status.RECEIVED).update(
            status=DataRequest.Status.ANSWERED,
            answer=answer,
            answered_at=now,
            answered_by=operator,
        )
        if answered:
            _officer_event(
                "operator_data_request_answered",
                data_request,
                request,
                operator,
                request_kind=data_request.kind,
                **({"revocation": revocation} if revocation else {}),
            )
            if revocation == REVOCATION_GRANTED:
                # No more treatment on the revoked authorisation: the open office session ends now, and
                # a sign-in whose consent check came before this commit opens none (member_sign_in
                # writes its session only while revocations_granted is what that check read).
                Member.objects.filter(pk=data_request.member_id).update(
                    session_digest="", revocations_granted=F("revocations_granted") + 1
                )
                ConsentRevocation.objects.create(
                    member_id=data_request.member_id,
                    data_request=data_request,
                    # Read once this transaction holds the member's row, as «Permitir» reads its
                    # accepted_at (signin/views.py::policy): a consent that committed while this grant
                    # waited for the row is older than the revocation, and revoked with the others.
                    # Taken before the transaction, it came out older than that consent, which then
                    # stood. (Review, 2026-12-06; tests/security/test_revocation_race.py.)
                    revoked_at=timezone.now(),
                    revoked_by=operator,
                )
                _officer_event("operator_consent_revoked", data_request, request, operator)
            notices = notice_queue(  # none for a member without mobile or e-mail
                member=data_request.member,
                template="data_request_answered",
                context={"number": data_request.pk},
            )
    outbox_dispatch(notices)
    return bool(answered)
