"""Sending SMS through the backend named by settings.SMS_BACKEND (see base.py for the contract)."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.utils.module_loading import import_string

from oficina.notify.sms.base import BaseSmsBackend, SmsError, SmsMessage

__all__ = ["BaseSmsBackend", "SmsError", "SmsMessage", "get_connection", "outbox", "send_sms"]

# Filled by the locmem backend, like django.core.mail.outbox; tests clear it.
outbox: list[SmsMessage] = []


def get_connection(
    backend: str | None = None, *, fail_silently: bool = False, **kwargs: Any
) -> BaseSmsBackend:
    backend_class = import_string(backend or settings.SMS_BACKEND)
    return cast(BaseSmsBackend, backend_class(fail_silently=fail_silently, **kwargs))


def send_sms(
    to: str,
    body: str,
    *,
    fail_silently: bool = False,
    connection: BaseSmsBackend | None = None,
    reference: str = "",
) -> int:
    """Send one SMS; return 1 if sent, 0 if it failed silently. Raises SmsError otherwise."""
    connection = connection or get_connection(fail_silently=fail_silently)
    return connection.send_messages([SmsMessage(to=to, body=body, reference=reference)])
