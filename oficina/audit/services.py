from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from oficina.audit.models import ChainHead, Event
from oficina.lib.client import client_ip, user_agent
from oficina.members.models import Member

GENESIS = "0" * 64


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
    """Appends one event to the chain. `data` holds only non-secret facts (reason, channel, version)."""
    who = document or (member.document if member else "")
    with transaction.atomic():
        head, _ = ChainHead.objects.select_for_update().get_or_create(pk=1, defaults={"last_hash": GENESIS})
        event = Event(
            created_at=timezone.now(),
            kind=kind,
            member_id=member.pk if member else None,
            document_hmac=document_hmac(who) if who else "",
            ip_address=client_ip(request) if request else None,
            user_agent=user_agent(request) if request else "",
            data=data,
            prev_hash=head.last_hash,
        )
        event.hash = event.compute_hash()
        event.save()
        ChainHead.objects.filter(pk=1).update(last_hash=event.hash)
    return event


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    problem: str


def chain_verify() -> Iterator[ChainBreak]:
    """Walks the chain from the first event; yields every place where it does not hold."""
    expected_prev = GENESIS
    last_hash = GENESIS
    for event in Event.objects.order_by("id").iterator(chunk_size=2000):
        if event.prev_hash != expected_prev:
            yield ChainBreak(event.pk, "el hash anterior no coincide: falta o se alteró un evento previo")
        if event.compute_hash() != event.hash:
            yield ChainBreak(event.pk, "el contenido del evento fue modificado")
        expected_prev = last_hash = event.hash
    head = ChainHead.objects.filter(pk=1).values_list("last_hash", flat=True).first()
    if head is not None and head != last_hash:
        yield ChainBreak(
            0, "el último evento registrado no coincide con la cabeza de la cadena: se borraron eventos"
        )
