"""Operators' sign-ins, failures and sign-outs go to the audit chain (never the password)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from oficina.audit.services import event_record
from oficina.backoffice.middleware import operator_session_started


def device_seen(request: HttpRequest | None) -> dict[str, Any]:
    """`device_cookie` for a login event when the browser presented one for the username typed:
    "valid", "invalid" or "exhausted" (backoffice/device_cookie.py; set by sites.py's login). Never
    the cookie's value or nonce. Nothing when none was presented, as before device cookies."""
    state = getattr(request, "staff_device_cookie", None)
    return {"device_cookie": state} if state else {}


@receiver(user_logged_in)
def _staff_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        operator_session_started(request)
    event_record(
        "staff_login_ok", request=request, operator=getattr(user, "username", ""), **device_seen(request)
    )


@receiver(user_login_failed)
def _staff_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """The username typed, if it names an operator. Anything else may be a password typed in the
    wrong box, and the audit chain is append-only and exported: it is kept only as a keyed digest,
    enough to see the same unknown name tried again."""
    username = str(credentials.get("username", ""))[:150]
    if get_user_model()._default_manager.filter(username=username).exists():
        event_record("staff_login_failed", request=request, operator=username, **device_seen(request))
        return
    digest = salted_hmac("oficina.staff_login_failed", username).hexdigest()[:16]
    event_record(
        "staff_login_failed", request=request, operator="", unknown_username=digest, **device_seen(request)
    )


@receiver(user_logged_out)
def _staff_logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        # Why, when it was not the operator's own «Cerrar sesión» (backoffice/middleware.py).
        reason = {"reason": why} if (why := getattr(request, "staff_logout_reason", None)) else {}
        event_record("staff_logout", request=request, operator=getattr(user, "username", ""), **reason)


@receiver(post_save, sender=get_user_model())
def _access_withdrawn(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """A user saved inactive or not staff: every session of theirs signed in before now stays ended,
    even if the access is given back before that session's next request (backoffice/middleware.py).
    In the save's transaction (the admin's), so a save that fails records nothing."""
    from oficina.backoffice.models import OperatorAccessWithdrawn

    if not created and not (instance.is_active and instance.is_staff):
        OperatorAccessWithdrawn.objects.update_or_create(user_id=instance.pk, defaults={"at": timezone.now()})
