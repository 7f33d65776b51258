"""Six-digit PINs people choose first, beyond the runs and repeats NoSequenceValidator refuses.

Two sources. Patterns from published analyses of leaked numeric PIN sets (keypad shapes, mirrored
halves, doubled pairs, years), kept as rules and a short list so the reason can be explained. And the
3,000 most common six-digit passwords of a published corpus (data/common_pins_6.txt, built by
tools/build_common_pins.py), mostly dates (240188) that no rule here describes.
"""

from __future__ import annotations

import re
from pathlib import Path

CORPUS_FILE = Path(__file__).resolve().parent / "data" / "common_pins_6.txt"
CORPUS_SIZE_RANGE = range(2_500, 3_501)  # docs/security.md §2.4 says "about 3,000"


def corpus_load(path: Path = CORPUS_FILE) -> frozenset[str]:
    """The list's PINs; a line that is not six ASCII digits (or a comment) stops the process here,
    at import, rather than leaving a list that silently refuses nothing."""
    pins = []
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        if line.startswith("#"):
            continue
        if not re.fullmatch(r"[0-9]{6}", line):
            raise ValueError(f"{path.name}:{number}: not six digits: {line!r}")
        pins.append(line)
    return frozenset(pins)


# Read once per process, at import (gunicorn preloads the application, so its workers share it);
# a lookup is one hash of a six-character string.
CORPUS = corpus_load()

# Keypad shapes (columns, diagonals, crosses) and other classics not caught by the rules below.
COMMON = frozenset(
    {
        "147258",
        "258369",
        "369258",
        "852741",
        "741852",
        "963852",
        "159357",
        "357159",
        "753951",
        "951753",
        "159753",
        "357951",
        "147369",
        "369147",
        "789456",
        "456789",
        "654987",
        "987654",
        "456123",
        "321654",
        "789123",
        "123789",
        "102030",
        "101010",
        "010101",
        "100200",
        "112358",
        "142536",
        "131313",
        "520520",
        "520131",
        "121314",
        "123654",
        "147896",
        "159951",
        "753159",
        "246810",
        "135790",
        "111222",
        "222333",
        "000123",
        "123000",
        "696969",
        "007007",
        "666999",
    }
)


def is_in_corpus(pin: str) -> bool:
    return pin in CORPUS


def is_common_pin(pin: str) -> bool:
    if pin in COMMON:
        return True
    if pin[:3] == pin[:2:-1]:  # mirrored halves: 123321, 456654
        return True
    if pin[0] == pin[1] and pin[2] == pin[3] and pin[4] == pin[5]:  # doubled digits: 112233, 998877
        return True
    # A year after 00, 19 or 20 (001990, 191987, 202024): birth and wedding years are common guesses.
    return pin[:2] in {"00", "19", "20"} and 1930 <= int(pin[2:]) <= 2039
