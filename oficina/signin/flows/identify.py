"""Step 1-2: "Ingresa tu usuario", then the image and phrase shown before the PIN."""

from __future__ import annotations

from dataclasses import dataclass

from oficina.antiphishing.decoys import decoy_for
from oficina.antiphishing.gallery import GalleryImage, get_image
from oficina.consent.services import consent_current_exists
from oficina.lib.national_id import normalise_document
from oficina.lib.prepared import PreparedQuery
from oficina.members.models import Member


@dataclass(frozen=True)
class SecurityDisplay:
    image: GalleryImage
    phrase: str


def document_parse(*, raw: object) -> str:
    """The normalised cédula, or InvalidDocument with a Spanish message."""
    return normalise_document(raw if isinstance(raw, str) else "")


_BY_DOCUMENT = PreparedQuery("member_by_document", lambda d: Member.objects.filter(document=d)[:1], str)
_BY_DOCUMENT_WITH_CONSENT = PreparedQuery(
    "member_by_document_with_consent",
    lambda d: Member.objects.filter(document=d).annotate(has_current_consent=consent_current_exists())[:1],
    str,
)


def member_for_signin(*, document: str, with_consent: bool = False) -> Member | None:
    """The member behind a cédula when they may sign in; None for unknown and disabled alike.
    with_consent: also reads, in the same query, whether they accepted the current policy.
    (Every sign-in reads this: the SQL is compiled once per connection, see oficina/lib/prepared.py.)"""
    member = (_BY_DOCUMENT_WITH_CONSENT if with_consent else _BY_DOCUMENT).first(document)
    if member is None or not member.is_active:
        return None
    return member


def security_display(*, document: str) -> SecurityDisplay:
    """The member's own image and phrase; a stable decoy for anyone else (same page either way)."""
    member = member_for_signin(document=document)
    if member is not None and member.security_phrase:
        image = get_image(member.security_image)
        if image is not None:
            return SecurityDisplay(image=image, phrase=member.security_phrase)
    decoy = decoy_for(document)
    image = get_image(decoy.image_id)
    assert image is not None  # decoys only pick gallery ids
    return SecurityDisplay(image=image, phrase=decoy.phrase)
