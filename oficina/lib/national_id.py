"""Normalisation of the Colombian cédula de ciudadanía as members and the core system type it."""

from __future__ import annotations

import re

MAX_RAW_LENGTH = 40
MESSAGE = "La cédula debe tener entre 5 y 10 dígitos, sin letras."

# ASCII only: str.isdigit() and \d would also accept '١٢٣٤٥' or fullwidth digits.
_DOCUMENT = re.compile(r"[0-9]{5,10}")
# Dots, commas and any Unicode space (\s covers the non-breaking ones), plus the zero-width
# characters that come along when pasting.
_SEPARATORS = re.compile(r"[\s.,\u200b\u2060\ufeff]+")


class InvalidDocument(ValueError):
    pass


def normalise_document(raw: str) -> str:
    """'1.234.567', ' 1234567 ' and '1 234 567' all become '1234567'."""
    if len(raw) > MAX_RAW_LENGTH:
        raise InvalidDocument(MESSAGE)
    document = _SEPARATORS.sub("", raw)
    if not _DOCUMENT.fullmatch(document):
        raise InvalidDocument(MESSAGE)
    return document
