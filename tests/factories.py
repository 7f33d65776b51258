"""Test personas. Kept small: each test builds what it needs through these."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth.hashers import make_password
from django.utils import timezone

from oficina.consent.models import Consent
from oficina.consent.services import policy_current_or_default, policy_ensure_published
from oficina.members.models import Member, PinHistory

_documents = itertools.count(80_000_001)

DEFAULT_PIN = "480263"
DEFAULT_IMAGE = "buho"
DEFAULT_PHRASE = "La peor experiencia es la mejor maestra"


def make_member(*, pin: str | None = None, returning: bool = False, **fields: Any) -> Member:
    """A member as imported. `returning=True` gives them PIN 480263, image, phrase and consent,
    as if they had completed "Olvidé mi clave" once."""
    document = fields.pop("document", None) or str(next(_documents))
    values: dict[str, Any] = {
        "name": "María Fernanda Rojas",
        "mobile": "+573111234567",
        "email": "mynameis@mail.com",
    }
    if returning:
        pin = pin or DEFAULT_PIN
        values.update(security_image=DEFAULT_IMAGE, security_phrase=DEFAULT_PHRASE)
    values.update(fields)
    if pin is not None:
        values["pin_hash"] = make_password(pin)
    member = Member.objects.create(document=document, **values)
    if pin is not None:
        PinHistory.objects.create(member=member, pin_hash=member.pin_hash)
    if returning:
        policy = policy_ensure_published(policy_current_or_default())
        Consent.objects.create(
            member=member, policy=policy, text_sha256=policy.text_sha256, accepted_at=timezone.now()
        )
    return member
