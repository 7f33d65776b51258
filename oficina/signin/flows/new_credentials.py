"""Steps 7-10: the new PIN (typed twice), the image and phrase, the data policy, all saved at once."""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, QueryDict
from django.utils import timezone

from oficina.antiphishing.gallery import is_valid_image_id
from oficina.audit.services import event_record
from oficina.consent.models import PolicyVersion
from oficina.consent.services import consent_record
from oficina.lib.ratelimit import ratelimit_consume
from oficina.members.models import Member, PinHistory
from oficina.notify.outbox import notice_queue, outbox_dispatch
from oficina.signin.flows.login import session_auth_match
from oficina.signin.pin import secret_hash
from oficina.signin.validators import PIN_HISTORY_DEPTH, pin_validate_for_member, pin_validate_general

PHRASE_MIN = 4
PHRASE_MAX = 60


def new_pin_accept(*, request: HttpRequest, member: Member, pin: str) -> str:
    """Checks the rules and returns the new PIN's hash (kept in the session until the flow ends).

    The rules on the member's own data answer a question about it: «no puede ser igual a ninguna de tus
    últimas 3 claves» told whoever held a temporary code that the PIN typed was the member's current
    one. Proposed without limit, on a page that counts no failed PIN, it was a way to find the PIN
    without changing it: then «Regresar», and a sign-in with it, no notice to the member (review,
    2026-12-07). Each PIN that reaches those rules is counted per member (RATE_LIMITS["new_pin"]);
    the rules that are the same for everyone (a run, a common PIN) are not."""
    pin_validate_general(pin)
    ratelimit_consume(request, action="new_pin", key=member.document)
    pin_validate_for_member(pin, member=member)
    return secret_hash(pin)


def _digits_in_a_row(phrase: str) -> bool:
    """Four digits or more, each after the last or one or two spaces or signs after it, in any form a
    keyboard gives: «480263», «48 02 63», «4-8-0-2», «⁴⁸⁰²», «①②③④», «٤٨٠٢». Only the first and the
    last were refused (`\\d` is neither a superscript nor a circled digit), so a PIN written in the
    phrase with spaces or as superscripts was shown to whoever typed the cédula (review, 2026-12-07)."""
    shape = "".join("0" if unicodedata.digit(char, None) is not None else char for char in phrase)
    return re.search(r"0(?:\W{0,2}0){3,}", shape) is not None


def phrase_clean(raw: object) -> str:
    """The security phrase: letters, digits, spaces and everyday punctuation; shown escaped always."""
    if not isinstance(raw, str):
        raise ValidationError("Escribe tu frase de seguridad.", code="phrase_missing")
    phrase = " ".join(unicodedata.normalize("NFC", raw).split())
    if len(phrase) < PHRASE_MIN:
        raise ValidationError(
            f"Tu frase de seguridad debe tener al menos {PHRASE_MIN} caracteres.", code="phrase_short"
        )
    if len(phrase) > PHRASE_MAX:
        raise ValidationError(
            f"Tu frase de seguridad puede tener máximo {PHRASE_MAX} caracteres.", code="phrase_long"
        )
    if _digits_in_a_row(phrase):
        # A phrase is shown to anyone who types the cédula: it must never carry a PIN or a number.
        raise ValidationError(
            "Tu frase de seguridad no puede tener 4 o más números seguidos, tampoco separados por "
            "espacios o signos. Nunca escribas tu clave en ella.",
            code="phrase_digits",
        )
    allowed_punctuation = set(" .,;:¡!¿?-'\"()")
    for ch in phrase:
        if not (ch.isalnum() or ch in allowed_punctuation) or unicodedata.category(ch).startswith("C"):
            raise ValidationError(
                "Tu frase de seguridad solo puede tener letras, números, espacios y signos "
                "de puntuación comunes (. , ; : ¡ ! ¿ ? - ' \" ( )).",
                code="phrase_characters",
            )
    return phrase


def image_clean(raw: object) -> str:
    if not is_valid_image_id(raw):
        raise ValidationError("Selecciona una de las imágenes de seguridad.", code="image_missing")
    return str(raw)


def security_choice_parse(data: QueryDict) -> tuple[str, str, dict[str, str]]:
    """(image id, phrase, errors by field) from the "Imagen y frase de seguridad" form; the phrase
    comes back as typed (trimmed to a sane length) when it is refused, for the form to show again."""
    errors: dict[str, str] = {}
    raw_phrase = data.get("frase", "")
    image = ""
    phrase = raw_phrase[:200] if isinstance(raw_phrase, str) else ""
    try:
        image = image_clean(data.get("imagen", ""))
    except ValidationError as exc:
        errors["imagen"] = exc.messages[0]
    try:
        phrase = phrase_clean(raw_phrase)
    except ValidationError as exc:
        errors["frase"] = exc.messages[0]
    return image, phrase, errors


def pin_history_append(*, member: Member, pin_hash: str) -> None:
    """Remembers the new PIN's hash and forgets all but the last PIN_HISTORY_DEPTH (the reuse rule)."""
    PinHistory.objects.create(member=member, pin_hash=pin_hash)
    stale = member.pin_history.order_by("-created_at", "-id").values_list("pk", flat=True)[PIN_HISTORY_DEPTH:]
    PinHistory.objects.filter(pk__in=list(stale)).delete()


def credentials_complete(
    *,
    request: HttpRequest,
    member_id: int,
    pin_hash: str,
    image_id: str,
    phrase: str,
    policy: PolicyVersion,
    auth: object,
) -> Member | None:
    """Saves everything the reset defined, in one transaction: all of it or nothing.

    `auth` is session_auth_hash(member) as it was when the code was accepted. Nothing is saved (None)
    when the member was disabled since, or their PIN changed (another reset completed first): a flow
    still open from before must not undo the operator's disable or the member's own new PIN."""
    with transaction.atomic():
        member = Member.objects.select_for_update().get(pk=member_id)
        if not member.is_active or session_auth_match(member, auth) is None:
            return None
        first_access = not member.pin_hash  # the notice says the clave was created, not changed
        now = timezone.now()
        member.pin_hash = pin_hash
        member.pin_changed_at = now
        member.security_image = image_id
        member.security_phrase = phrase
        member.failed_pin_attempts = 0
        member.locked_at = None
        member.self_blocked_at = None
        member.session_digest = ""  # every session opened with the old PIN ends (see session_auth_hash)
        member.save()
        pin_history_append(member=member, pin_hash=pin_hash)
        event_record("reset_completed", request=request, member=member)
        consent_record(member=member, policy=policy, request=request)
        notices = notice_queue(member=member, template="pin_changed", context={"first_access": first_access})
    outbox_dispatch(notices)
    return member
