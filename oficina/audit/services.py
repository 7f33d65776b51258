from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from oficina.audit.models import Event
from oficina.lib.client import client_ip, user_agent
from oficina.members.models import Member


def document_hmac(document: str) -> str:
    return salted_hmac(
        "oficina.audit.document", document, secret=settings.DECOY_KEY, algorithm="sha256"
    ).hexdigest()


def event_record(
    kind: str,
    *,
    request: HttpRequest | None = None,
    member: Member | None = None,
    document: str = "",
    **data: Any,
) -> Event:
    return Event.objects.create(
        created_at=timezone.now(),
        kind=kind,
        member_id=member.pk if member else None,
        document_hmac=document_hmac(document or (member.document if member else ""))
        if (document or member)
        else "",
        ip_address=client_ip(request) if request else None,
        user_agent=user_agent(request) if request else "",
        data=data,
    )
