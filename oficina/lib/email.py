"""E-mail addresses as the portal stores them: validated, trimmed, the domain lowercased."""

from __future__ import annotations

import re

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


class InvalidEmail(ValueError):
    pass


def normalise_email(raw: str) -> str:
    """The local part stays as typed (it is the mailbox owner's business); the domain is lowercased."""
    email = raw.strip()
    if len(email) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(f"El correo no puede tener más de {MAX_EMAIL_LENGTH} caracteres.")
    if not _PLAIN.fullmatch(email):
        try:
            _validate(email)
        except ValidationError as exc:
            raise InvalidEmail("El correo no es válido.") from exc
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"
