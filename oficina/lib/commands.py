"""What the management commands share."""

from __future__ import annotations

import math
from argparse import ArgumentTypeError

LONGEST_WAIT = 86_400  # a day: a longer pause between rounds is a typo (and threading refuses ~1e9)


def seconds(text: str) -> float:
    """A command's number of seconds to wait, from 0 to a day. A negative, nan or infinite one, a typo
    at the prompt, stopped a worker at its first idle round with a traceback (time.sleep and
    threading.Event.wait refuse them), and `audit_seal --loop nan` sealed nothing, forever."""
    try:
        value = float(text)
    except ValueError:
        raise ArgumentTypeError(f"«{text}» no es un número de segundos") from None
    if not (math.isfinite(value) and 0 <= value <= LONGEST_WAIT):
        raise ArgumentTypeError(f"debe ser un número de segundos entre 0 y {LONGEST_WAIT}")
    return value
