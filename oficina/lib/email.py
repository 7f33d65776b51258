"""E-mail addresses as the portal stores them: validated, trimmed, the domain lowercased."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

MAX_EMAIL_LENGTH = 254

_validate = EmailValidator()


class InvalidEmail(ValueError):
    pass


def normalise_email(raw: str) -> str:
    """The local part stays as typed (it is the mailbox owner's business); the domain is lowercased."""
    email = raw.strip()
    if len(email) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(f"El correo no puede tener más de {MAX_EMAIL_LENGTH} caracteres.")
    try:
        _validate(email)
    except ValidationError as exc:
        raise InvalidEmail("El correo no es válido.") from exc
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"
