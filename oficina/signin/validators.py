"""PIN rules, in the shape of Django's password validators: validate() raises, get_help_text() explains."""

from __future__ import annotations

from itertools import pairwise

from django.core.exceptions import ValidationError

from oficina.members.models import Member
from oficina.signin.common_pins import is_common_pin, is_in_corpus
from oficina.signin.pin import secret_check

PIN_HISTORY_DEPTH = 3


class SixDigitsValidator:
    def validate(self, pin: str, member: Member | None = None) -> None:
        if len(pin) != 6 or not all(c in "0123456789" for c in pin):
            raise ValidationError("Tu clave debe estar compuesta por 6 números.", code="pin_format")

    def get_help_text(self) -> str:
        return "Tu clave debe estar compuesta por 6 números."


class NoSequenceValidator:
    """Runs (123456, 654321, 890123) and repeats (111111, 121212, 123123) are the first guesses."""

    def validate(self, pin: str, member: Member | None = None) -> None:
        steps = {(int(b) - int(a)) % 10 for a, b in pairwise(pin)}
        if steps == {1} or steps == {9}:
            raise ValidationError(
                "Tu clave no puede ser una secuencia de números seguidos, como 123456 o 654321.",
                code="pin_sequence",
            )
        if pin == pin[0] * 6 or pin == pin[:2] * 3 or pin == pin[:3] * 2:
            raise ValidationError(
                "Tu clave no puede repetir el mismo número ni el mismo grupo de números, "
                "como 111111, 121212 o 123123.",
                code="pin_repeated",
            )

    def get_help_text(self) -> str:
        return "No uses secuencias (123456) ni repeticiones (111111, 121212, 123123)."


class NotCommonPinValidator:
    """Keypad shapes (147258, 159753), mirrored halves (123321), doubled digits (112233), years; then
    the 3,000 most common six-digit PINs of a published corpus (mostly dates, e.g. 240188)."""

    def validate(self, pin: str, member: Member | None = None) -> None:
        if is_common_pin(pin):
            raise ValidationError(
                "Esa clave es de las más usadas y fáciles de adivinar (figuras del teclado, años, "
                "números en espejo o en pares). Elige otra.",
                code="pin_common",
            )
        if is_in_corpus(pin):
            # No pattern to name here: the member reads the plain reason, never where it comes from.
            raise ValidationError(
                "Esa clave es de las más usadas y fáciles de adivinar. Elige otra.",
                code="pin_common",
            )

    def get_help_text(self) -> str:
        return "No uses claves comunes: figuras del teclado (147258), años (201990) ni pares (112233)."


class NotPersonalDataValidator:
    def validate(self, pin: str, member: Member | None = None) -> None:
        if member is None:
            return
        if pin in member.document:
            raise ValidationError("Tu clave no puede ser parte de tu número de cédula.", code="pin_document")
        national_mobile = member.mobile.removeprefix("+57")
        if national_mobile and pin in national_mobile:
            raise ValidationError("Tu clave no puede ser parte de tu número de celular.", code="pin_mobile")

    def get_help_text(self) -> str:
        return "No uses números de tu cédula ni de tu celular."


class NotRecentPinValidator:
    def validate(self, pin: str, member: Member | None = None) -> None:
        if member is None or member.pk is None:
            return
        recent = member.pin_history.order_by("-created_at", "-id")[:PIN_HISTORY_DEPTH]
        hashes = [entry.pin_hash for entry in recent]
        if not hashes and member.pin_hash:
            hashes = [member.pin_hash]
        for encoded in hashes:
            if secret_check(pin, encoded):
                raise ValidationError(
                    "Tu clave no puede ser igual a ninguna de tus últimas 3 claves.", code="pin_reused"
                )

    def get_help_text(self) -> str:
        return "No repitas ninguna de tus últimas 3 claves."


# The same for everyone: a refusal tells nothing about the member.
GENERAL_VALIDATORS = (SixDigitsValidator(), NoSequenceValidator(), NotCommonPinValidator())
# Checked against the member's own data: a refusal says that the PIN typed is part of their mobile, or
# is one of their last PINs, the current one included. Whoever may propose a new PIN (a holder of the
# temporary code, a session in the office) could ask these as questions, so new_pin_accept counts the
# PINs that reach them (RATE_LIMITS["new_pin"]).
MEMBER_VALIDATORS = (NotPersonalDataValidator(), NotRecentPinValidator())
PIN_VALIDATORS = GENERAL_VALIDATORS + MEMBER_VALIDATORS


def pin_validate(pin: str, *, member: Member | None) -> None:
    """Raises ValidationError with the first rule the PIN breaks (cheap rules first, hashes last)."""
    pin_validate_general(pin)
    pin_validate_for_member(pin, member=member)


def pin_validate_general(pin: str) -> None:
    for validator in GENERAL_VALIDATORS:
        validator.validate(pin, None)


def pin_validate_for_member(pin: str, *, member: Member | None) -> None:
    for validator in MEMBER_VALIDATORS:
        validator.validate(pin, member)


def pin_help_texts() -> list[str]:
    return [validator.get_help_text() for validator in PIN_VALIDATORS]
