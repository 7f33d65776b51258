"""Test personas. Kept small: each test builds what it needs through these."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth.hashers import make_password

from oficina.members.models import Member

_documents = itertools.count(80_000_001)

DEFAULT_PIN = "480263"


def make_member(*, pin: str | None = DEFAULT_PIN, **fields: Any) -> Member:
    document = fields.pop("document", None) or str(next(_documents))
    values: dict[str, Any] = {
        "name": "María Fernanda Rojas",
        "mobile": "+573111234567",
        "email": "mynameis@mail.com",
        "security_image": "",
        "security_phrase": "",
    }
    values.update(fields)
    if pin is not None:
        values["pin_hash"] = make_password(pin)
        values.setdefault("security_image", "")
    return Member.objects.create(document=document, **values)
