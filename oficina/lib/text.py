"""Text that people type and other people read: what may be stored of it.

Control characters (terminal escapes, a NUL PostgreSQL cannot store) and the bidirectional embeddings,
overrides and isolates (U+202A to U+202E, U+2066 to U+2069: «Trojan Source» text, which reads otherwise
than it is stored) are refused wherever text reaches another reader: a member's data request (the data
officer reads it), the officer's answer and extension reasons (the member reads them), a policy's
version and text (every member reads and accepts them). A multi-line field keeps its line breaks and
tabs.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LINE_BREAKS = frozenset("\n\r\t")


def unstorable(char: str, *, multiline: bool = False) -> bool:
    if multiline and char in LINE_BREAKS:
        return False
    return unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS


def without_unstorable(text: str, *, multiline: bool = False) -> str:
    return "".join(char for char in text if not unstorable(char, multiline=multiline))


class StorableText:
    """A form field's validator: a Spanish refusal naming the first character that cannot be kept."""

    def __init__(self, *, multiline: bool = False) -> None:
        self.multiline = multiline

    def __call__(self, value: str) -> None:
        found = next((char for char in value if unstorable(char, multiline=self.multiline)), None)
        if found is not None:
            raise ValidationError(
                "El texto tiene un carácter de control o de dirección de escritura (U+%(code)04X) que no "
                "se puede guardar: quítalo y guarda de nuevo.",
                code="unstorable",
                params={"code": ord(found)},
            )

    def __eq__(self, other: object) -> bool:  # for Django's migration autodetector, if ever on a model
        return isinstance(other, StorableText) and other.multiline == self.multiline

    def deconstruct(self) -> tuple[str, tuple[()], dict[str, bool]]:
        return ("oficina.lib.text.StorableText", (), {"multiline": self.multiline})
