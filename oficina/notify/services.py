"""Messages to members: the temporary code and the security notices, by SMS and e-mail.

Texts live in templates/notify/. Nothing here logs a message body: it may hold a temporary code.
"""

from __future__ import annotations

import logging
import re
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from oficina.lib.masking import mask_email
from oficina.members.models import Member
from oficina.notify.gsm import GSM7_SEGMENT_LENGTH, gsm7_length, to_gsm7
from oficina.notify.sms import SmsError, send_sms

logger = logging.getLogger(__name__)

SMS = "sms"
EMAIL = "email"

# Words a shortened cooperative name should not end on ("Cooperativa de Ahorro y").
_DANGLING_WORDS = {"de", "del", "la", "las", "los", "el", "y", "e", "para", "en"}


class DeliveryError(Exception):
    """A message could not be sent; ``str(error)`` is a Spanish sentence fit to show the member."""

    def __init__(self, message: str, *, permanent: bool = False, channel: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.channel = channel


def temporary_code_send(*, member: Member, channel: str, code: str) -> None:
    """Send the temporary code by the member's chosen channel ("sms" or "email")."""
    if channel not in {SMS, EMAIL}:
        raise ValueError(f"Unknown channel {channel!r}")
    _send(member=member, channel=channel, template="temporary_code", context={"code": code})


def pin_changed_notice_send(*, member: Member) -> None:
    """Tell the member, on every channel they have, that their clave, image and phrase were changed."""
    _send_everywhere(member=member, template="pin_changed", context={})


def access_locked_notice_send(*, member: Member) -> None:
    """Tell the member, on every channel they have, that their access was locked after wrong claves."""
    _send_everywhere(
        member=member, template="access_locked", context={"attempts": settings.PIN_MAX_FAILED_ATTEMPTS}
    )


SECURITY_CHANGES = {
    "pin": "se cambió tu clave de acceso",
    "image": "se cambiaron tu imagen y tu frase de seguridad",
    "contact": "se cambiaron tus datos de contacto",
}


def security_change_notice_send(*, member: Member, change: str) -> None:
    """Tell the member, on every channel of `member` (pass the OLD contact data for a contact change),
    that something guarding their access changed inside the office."""
    _send_everywhere(member=member, template="security_change", context={"what": SECURITY_CHANGES[change]})


_REUSED_SMS_TEXTS: ContextVar[dict[tuple[Any, ...], str] | None] = ContextVar(
    "reused_sms_texts", default=None
)


@contextmanager
def sms_texts_reused() -> Iterator[None]:
    """Within it, an SMS template rendered again with the same context gives back the text it gave
    before, instead of rendering it again: a registry import's notices are one text for thousands of
    members. The texts are kept until the block ends, so use it only where no context holds a secret
    (never around a temporary code)."""
    token = _REUSED_SMS_TEXTS.set({})
    try:
        yield
    finally:
        _REUSED_SMS_TEXTS.reset(token)


def sms_text_render(template_name: str, context: dict[str, Any]) -> str:
    """The SMS text in GSM-7, within one segment; a long cooperative name is shortened to fit.

    Raises ValueError when even the shortest name does not fit: the template itself is too long.
    """
    texts = _REUSED_SMS_TEXTS.get()
    if texts is None:
        return _sms_text_render(template_name, context)
    key = (template_name, *sorted(context.items()))
    if key not in texts:
        texts[key] = _sms_text_render(template_name, context)
    return texts[key]


def _sms_text_render(template_name: str, context: dict[str, Any]) -> str:
    for name in _cooperative_names():
        text = to_gsm7(render_to_string(template_name, {**_common_context(), **context, "cooperative": name}))
        text = text.strip()
        if gsm7_length(text) <= GSM7_SEGMENT_LENGTH:
            return text
    raise ValueError(f"{template_name} renders longer than {GSM7_SEGMENT_LENGTH} GSM-7 characters")


def _send_everywhere(*, member: Member, template: str, context: dict[str, Any]) -> None:
    # Every channel is tried even if one fails: a security notice should reach the member somehow.
    channels = [channel for channel, address in ((SMS, member.mobile), (EMAIL, member.email)) if address]
    errors: list[DeliveryError] = []
    for channel in channels:
        try:
            _send(member=member, channel=channel, template=template, context=context)
        except DeliveryError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def _send(*, member: Member, channel: str, template: str, context: dict[str, Any]) -> None:
    if channel == SMS:
        if not member.mobile:
            raise ValueError(f"Member {member.pk} has no mobile number")
        text = sms_text_render(f"notify/{template}_sms.txt", context)
        try:
            send_sms(member.mobile, text)
        except SmsError as exc:
            logger.warning(
                "SMS %s to member %s failed (permanent=%s): %s", template, member.pk, exc.permanent, exc
            )
            raise _delivery_error(SMS, permanent=exc.permanent) from exc
    else:
        if not member.email:
            raise ValueError(f"Member {member.pk} has no e-mail address")
        _email_send(member=member, template=template, context=context)


def email_render(*, member: Member, template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text body, HTML body) of an e-mail to `member`, from templates/notify/."""
    full_context = {**_common_context(), "first_name": _first_name(member), **context}
    subject = " ".join(render_to_string(f"notify/{template}_email_subject.txt", full_context).split())
    body = render_to_string(f"notify/{template}_email.txt", full_context)
    html = render_to_string(f"notify/{template}_email.html", full_context)
    return subject, body, html


def email_message(
    *, to: str, subject: str, body: str, html: str, reference: str = ""
) -> EmailMultiAlternatives:
    headers = {}
    if reference:
        # The same Message-ID on a retry lets mail systems drop a duplicate.
        domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "localhost"
        headers["Message-ID"] = f"<{reference}@{domain}>"
    message = EmailMultiAlternatives(
        subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[to], headers=headers
    )
    if html:
        message.attach_alternative(html, "text/html")
    return message


def _email_send(*, member: Member, template: str, context: dict[str, Any]) -> None:
    subject, body, html = email_render(member=member, template=template, context=context)
    message = email_message(to=member.email, subject=subject, body=body, html=html)
    try:
        message.send()
    except OSError as exc:  # smtplib.SMTPException is an OSError, as are refused connections and timeouts
        permanent = smtp_is_permanent(exc)
        logger.warning(
            "E-mail %s to member %s failed (permanent=%s): %s",
            template,
            member.pk,
            permanent,
            delivery_error_text(exc),
        )
        raise _delivery_error(EMAIL, permanent=permanent) from exc


# An e-mail address inside a server's reply ("550 5.1.1 <maria@mail.com>: Recipient address rejected").
_ADDRESS = re.compile(r"[^\s<>()\[\]{}'\",;:]+@[^\s<>()\[\]{}'\",;:]+")


def delivery_error_text(exc: Exception) -> str:
    """What the outbox keeps of a failed send (its "último error", shown to operators) and what the
    log says: the error's type and the server's reply, every e-mail address in it masked as the
    outbox page shows the destination. A refused mailbox's exception holds the full address twice
    (its key and the reply that quotes it)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        detail = "; ".join(f"{code} {_reply_text(reply)}" for code, reply in exc.recipients.values())
    elif isinstance(exc, smtplib.SMTPResponseException):
        detail = f"{exc.smtp_code} {_reply_text(exc.smtp_error)}"
    else:
        detail = str(exc)
    text = f"{type(exc).__name__}: {detail}"
    return _ADDRESS.sub(lambda match: mask_email(match.group()), text)[:300]


def _reply_text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def smtp_is_permanent(exc: OSError) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    return False


def _delivery_error(channel: str, *, permanent: bool) -> DeliveryError:
    what = (
        "el mensaje de texto a tu celular registrado"
        if channel == SMS
        else "el correo a tu dirección registrada"
    )
    if permanent:
        message = (
            f"No pudimos enviar {what}. "
            f"Comunícate con nosotros al {settings.COOPERATIVE_PHONE} para revisar tus datos."
        )
    else:
        message = f"No pudimos enviar {what} en este momento. Intenta de nuevo en unos minutos."
    return DeliveryError(message, permanent=permanent, channel=channel)


def _common_context() -> dict[str, Any]:
    return {
        "cooperative": settings.COOPERATIVE_NAME,
        "phone": settings.COOPERATIVE_PHONE,
        # Links in messages always use the configured address, never the request's Host header.
        "site_url": settings.SITE_URL,
        "minutes": max(1, settings.CODE_VALIDITY_SECONDS // 60),
    }


def _first_name(member: Member) -> str:
    words = member.name.split()
    if not words:
        return ""
    # Names imported from the core system may be all capitals: "MARÍA" reads better as "María".
    return words[0].capitalize() if words[0].isupper() else words[0]


def _cooperative_names() -> Iterator[str]:
    """The cooperative's name, then ever shorter forms of it, dropping words from the end."""
    name = settings.COOPERATIVE_NAME
    yield name
    words = name.split()
    for count in range(len(words) - 1, 0, -1):
        if words[count - 1].lower() not in _DANGLING_WORDS:
            yield " ".join(words[:count])
    if words:
        for length in range(len(words[0]) - 1, 0, -1):
            yield words[0][:length]
