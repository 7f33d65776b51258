"""E-mail addresses as the portal stores them: validated, trimmed, the domain lowercased."""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

MAX_EMAIL_LENGTH = 254

_validate = EmailValidator()
# Fast path for the plain addresses an import holds by the million (Django's validator costs ~15 µs): a
# strict ASCII subset of what EmailValidator accepts (dot-atom local part, letter-only top-level
# domain). Anything else goes to the validator. tests/test_email.py checks the two agree.
_PLAIN = re.compile(
    r"[A-Za-z0-9_%+-]{1,64}(?:\.[A-Za-z0-9_%+-]{1,64})*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)

# Control characters (Cc: a terminal escape or a bell in a quoted local part, which Django's validator
# accepts) and format characters (Cf: the bidirectional overrides and isolates, zero-width spaces and
# joiners, which IDNA lets into a domain): no mailbox a member uses has them, and they would reach the
# office's pages, the operators' lists and the logs reading otherwise than they are stored.
_INVISIBLE = frozenset({"Cc", "Cf"})


class InvalidEmail(ValueError):
    pass


def normalise_email(raw: str) -> str:
    """The local part stays as typed (it is the mailbox owner's business); the domain is lowercased."""
    email = raw.strip()
    if len(email) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(f"El correo no puede tener más de {MAX_EMAIL_LENGTH} caracteres.")
    if not _PLAIN.fullmatch(email):
        if any(unicodedata.category(char) in _INVISIBLE for char in email):
            raise InvalidEmail("El correo no es válido.")
        try:
            _validate(email)
        except ValidationError as exc:
            raise InvalidEmail("El correo no es válido.") from exc
    local, _, domain = email.rpartition("@")
    normalised = f"{local}@{domain.lower()}"
    # Lowercasing can lengthen a domain: «İ» (U+0130) becomes «i» and a combining dot (U+0307), so an
    # address that fitted before it no longer fits the column, and saving it was PostgreSQL's «value
    # too long» (a 500 on the office's contact page, an operator's change at the counter, an import).
    if len(normalised) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(f"El correo no puede tener más de {MAX_EMAIL_LENGTH} caracteres.")
    return normalised
