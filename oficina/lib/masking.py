"""Partial views of contact data, so a member can recognise their channel without it being disclosed."""

from __future__ import annotations

_HIDDEN = "****"


def mask_mobile(e164: str) -> str:
    """'+573111234567' → '311 12****', the format the members' guide shows."""
    if not isinstance(e164, str) or not e164.strip():
        return ""
    text = e164.strip()
    digits = "".join(char for char in text if char in "0123456789")
    if text.startswith("+57") and len(digits) == 12:
        digits = digits[2:]
    if len(digits) != 10:
        return _HIDDEN  # not a number we know how to show in part: show none of it
    return f"{digits[:3]} {digits[3:5]}{_HIDDEN}"


def mask_email(email: str) -> str:
    """'mynameis@mail.com' → 'mynam****@mail.com': at most five characters, and always at least three
    of the local part hidden ('abcdef' shows 'abc'); a local part of five or fewer shows one."""
    if not isinstance(email, str) or not email.strip():
        return ""
    local, at, domain = email.strip().rpartition("@")
    if not at or not local or not domain:
        return _HIDDEN
    shown = local[: min(5, len(local) - 3)] if len(local) > 5 else local[:1]
    return f"{shown}{_HIDDEN}@{domain.lower()}"
