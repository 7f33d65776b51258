"""Operators' sign-ins, failures and sign-outs go to the audit chain (never the password)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from oficina.audit.services import event_record


@receiver(user_logged_in)
def _staff_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    event_record("staff_login_ok", request=request, operator=getattr(user, "username", ""))


@receiver(user_login_failed)
def _staff_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username", ""))[:150]
    event_record("staff_login_failed", request=request, operator=username)


@receiver(user_logged_out)
def _staff_logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        event_record("staff_logout", request=request, operator=getattr(user, "username", ""))
