"""GSM-7 (3GPP TS 23.038) helpers: an SMS in this alphabet fits 160 characters in one segment.

One character outside it turns the whole message into UCS-2, where a segment holds only 70, so the texts
we send are transliterated first (á → a) while keeping what GSM-7 does have (ñ, é, ü, ¿, ¡).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

GSM7_SEGMENT_LENGTH = 160

# The default alphabet (basic table), without the escape code 0x1B.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each character is sent as escape + code, so it counts as 2.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

GSM7_ALL: frozenset[str] = GSM7_BASIC | GSM7_EXTENSION

# Closest GSM-7 text for characters that Unicode normalisation does not reduce to GSM-7 on its own.
_REPLACEMENTS = {
    "\t": " ",
    "\u00a0": " ",  # no-break space
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "`": "'",
    "\u00b4": "'",  # acute accent on its own
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "«": '"',
    "»": '"',
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2212": "-",  # minus sign
    "\u2022": "*",  # bullet
    "·": ".",
    "º": "o",
    "ª": "a",
    "°": "o",
    "œ": "oe",
    "Œ": "OE",
    "đ": "d",
    "Đ": "D",
    "ł": "l",
    "Ł": "L",
    "¢": "c",
    "\u2044": "/",  # fraction slash, as in the decomposition of "½"
}


def is_gsm7(text: str) -> bool:
    return GSM7_ALL.issuperset(text)


def gsm7_length(text: str) -> int:
    """Septets the text takes in GSM-7: extension characters count 2. Raises ValueError outside GSM-7."""
    if not GSM7_ALL.issuperset(text):
        char = next(char for char in text if char not in GSM7_ALL)
        raise ValueError(f"{char!r} (U+{ord(char):04X}) is not in the GSM-7 alphabet")
    return len(text) + sum(char in GSM7_EXTENSION for char in text)


def to_gsm7(text: str) -> str:
    """The text with every character outside GSM-7 replaced by its closest GSM-7 text, or "?"."""
    if GSM7_ALL.issuperset(text):  # the usual case: every SMS is rendered, each notice of an import too
        return text
    return "".join(_to_gsm7_char(char) for char in text)


@lru_cache(maxsize=1024)  # one character in, its replacement out: nothing of a message is kept
def _to_gsm7_char(char: str) -> str:
    if char in GSM7_ALL:
        return char
    if char in _REPLACEMENTS:
        return _REPLACEMENTS[char]
    # á → a + combining accent → a; "…" → "..."; "²" → "2"; full-width letters → ASCII.
    decomposed = "".join(
        _REPLACEMENTS.get(c, c) for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
    )
    if decomposed and decomposed != char and is_gsm7(decomposed):
        return decomposed
    return "?"
