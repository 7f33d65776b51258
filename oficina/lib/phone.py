"""Normalisation of Colombian mobile numbers to E.164 (+573111234567)."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberFormat, PhoneNumberType

MAX_RAW_LENGTH = 40
MESSAGE = "El celular debe ser un número móvil colombiano de 10 dígitos que empiece por 3."

# Digits and the punctuation people type; letters would let phonenumbers read '311-CALL-ME1' as digits.
_ALLOWED = re.compile(r"[0-9+()\-.\s]*")
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}

# Fast path for the forms the core system exports (an import may hold a million rows, and a full
# phonenumbers parse costs ~60 µs): once the separators people type are removed, it checks the same
# metadata pattern phonenumbers uses for MOBILE, and anything it does not accept falls through to the
# full parse. tests/test_phone.py checks that both paths agree on every form.
_PLAIN = re.compile(r"(?:\+?57)?(3[0-9]{9})")
_SEPARATORS = re.compile(r"[\s\-.()]+")


def _colombian_mobile_pattern() -> re.Pattern[str]:
    metadata = PhoneMetadata.metadata_for_region("CO")
    pattern = metadata.mobile.national_number_pattern if metadata and metadata.mobile else None
    if not pattern:
        raise ImportError("phonenumbers has no Colombian mobile metadata")
    return re.compile(pattern)


_CO_MOBILE = _colombian_mobile_pattern()


class InvalidMobile(ValueError):
    pass


def normalise_mobile(raw: str) -> str:
    """'311 123 4567', '+57 311 123 4567' or '(311) 123-4567' become '+573111234567'."""
    if len(raw) > MAX_RAW_LENGTH:
        raise InvalidMobile(MESSAGE)
    text = raw.strip()
    plain = _PLAIN.fullmatch(_SEPARATORS.sub("", text)) if _ALLOWED.fullmatch(text) else None
    if plain and _CO_MOBILE.fullmatch(plain.group(1)):
        return "+57" + plain.group(1)
    return _parse(text)


def _parse(text: str) -> str:
    if not _ALLOWED.fullmatch(text) or not any(char.isdigit() for char in text):
        raise InvalidMobile(MESSAGE)
    try:
        number = phonenumbers.parse(text, "CO")
    except phonenumbers.NumberParseException as exc:
        raise InvalidMobile(MESSAGE) from exc
    national = str(number.national_number)
    if (
        number.country_code != 57
        or number.italian_leading_zero
        or len(national) != 10
        or not national.startswith("3")
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.number_type(number) not in _MOBILE_TYPES
    ):
        raise InvalidMobile(MESSAGE)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)
