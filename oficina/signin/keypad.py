"""The virtual keypad: shuffled digits, one opaque token per button, decoded only on the server.

Pure module, no database. The state lives in the member's server-side session as plain data:
the server keeps the token→digit maps of the renders of one entry, and the browser keeps only the
tokens it pressed. Neither side alone holds the PIN, and the request body never carries a digit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

DIGITS = "0123456789"
PIN_LENGTH = 6
# A no-JavaScript entry re-renders the keypad after each press; this bounds the session's size.
MAX_RENDERS_PER_ENTRY = 24
TOKEN_BYTES = 9

_random = secrets.SystemRandom()


@dataclass(frozen=True)
class Key:
    token: str
    digit: str


class KeypadError(Exception):
    """A submission that does not belong to the keypad shown in this session (replayed, forged, stale)."""


def shuffled_keys() -> list[Key]:
    digits = list(DIGITS)
    _random.shuffle(digits)
    return [Key(token=secrets.token_urlsafe(TOKEN_BYTES), digit=d) for d in digits]


class KeypadEntry:
    """One PIN (or code) being typed: the renders shown so far, stored in the session as a dict."""

    def __init__(self, state: dict[str, Any] | None, *, purpose: str) -> None:
        if not state or state.get("purpose") != purpose:
            state = {"purpose": purpose, "renders": []}
        self.state = state

    @property
    def purpose(self) -> str:
        return str(self.state["purpose"])

    def render(self) -> list[Key]:
        """A new layout for the page about to be shown; its tokens join this entry's valid tokens."""
        renders: list[dict[str, str]] = self.state["renders"]
        if len(renders) >= MAX_RENDERS_PER_ENTRY:
            raise KeypadError("too many renders in one entry")
        keys = shuffled_keys()
        renders.append({key.token: key.digit for key in keys})
        return keys

    def decode(self, tokens: list[str]) -> str:
        """The digits behind the pressed tokens; any unknown token refuses the whole submission."""
        known: dict[str, str] = {}
        for mapping in self.state["renders"]:
            known.update(mapping)
        digits = []
        for token in tokens:
            digit = known.get(token)
            if digit is None:
                raise KeypadError("unknown keypad token")
            digits.append(digit)
        return "".join(digits)


def parse_tokens(raw: object, *, limit: int = PIN_LENGTH) -> list[str]:
    """Splits the hidden field of pressed tokens; rejects anything that is not a short token list."""
    if not isinstance(raw, str) or len(raw) > (limit + 1) * 20:
        raise KeypadError("malformed token list")
    tokens = raw.split()
    if len(tokens) > limit:
        raise KeypadError("too many tokens")
    for token in tokens:
        if len(token) > 20 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in token):
            raise KeypadError("malformed token")
    return tokens
