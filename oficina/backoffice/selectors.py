"""Reads for the operators' pages: the member's access status as operators name it, consent proofs."""

from __future__ import annotations

from django.db.models import Case, CharField, QuerySet, Value, When

from oficina.consent.models import Consent
from oficina.members.models import Member


class AccessStatus:
    ACTIVE = "active"
    LOCKED = "locked"
    SELF_BLOCKED = "self_blocked"
    NEVER = "never"
    DISABLED = "disabled"

    CHOICES = [
        (ACTIVE, "Activo"),
        (LOCKED, "Bloqueado (intentos fallidos)"),
        (SELF_BLOCKED, "Bloqueado por el asociado"),
        (NEVER, "Nunca ha ingresado"),
        (DISABLED, "Deshabilitado"),
    ]
    LABELS = dict(CHOICES)


def members_with_access_status(queryset: QuerySet[Member] | None = None) -> QuerySet[Member]:
    """Annotates `access_status`; the first matching rule wins (a disabled member is "Deshabilitado"
    whatever else is true; a self-block sets locked_at too, so it is checked before the lock)."""
    queryset = Member.objects.all() if queryset is None else queryset
    return queryset.annotate(
        access_status=Case(
            When(status=Member.Status.DISABLED, then=Value(AccessStatus.DISABLED)),
            When(self_blocked_at__isnull=False, then=Value(AccessStatus.SELF_BLOCKED)),
            When(locked_at__isnull=False, then=Value(AccessStatus.LOCKED)),
            When(pin_hash="", then=Value(AccessStatus.NEVER)),
            default=Value(AccessStatus.ACTIVE),
            output_field=CharField(),
        )
    )


def member_access_status(member: Member) -> str:
    """The same rule for one loaded member (no query)."""
    if member.status == Member.Status.DISABLED:
        return AccessStatus.DISABLED
    if member.self_blocked_at is not None:
        return AccessStatus.SELF_BLOCKED
    if member.locked_at is not None:
        return AccessStatus.LOCKED
    if not member.pin_hash:
        return AccessStatus.NEVER
    return AccessStatus.ACTIVE


def member_consents(member: Member) -> QuerySet[Consent]:
    """Every acceptance by the member, oldest first, with the policy text that was accepted."""
    return Consent.objects.filter(member=member).select_related("policy").order_by("accepted_at", "id")
