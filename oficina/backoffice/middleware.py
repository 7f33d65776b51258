"""An operator's session ends after OPERATOR_IDLE_SECONDS without a request (an unattended desk; a HEAD
is no request of the operator's here), and SESSION_ABSOLUTE_SECONDS (one hour) after the sign-in
whatever the activity.

The absolute limit bounds what a stolen or forgotten session can do: Django's own expiry moves on
with every save, and this middleware saves the session on every request, so without it an operator
active every quarter of an hour would stay signed in for ever. The idle limit bounds the minutes a
back office left open on a desk can be used by whoever sits down. Only the operators' pages are looked
at: members' requests never load an operator's session here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

SEEN_KEY = "operator_seen_at"
STARTED_KEY = "operator_signed_in_at"
IDLE_MESSAGE = "Tu sesión de operador se cerró tras {minutes} minutos sin actividad. Ingresa de nuevo."
ABSOLUTE_MESSAGE = "Tu sesión de operador llegó a su duración máxima de {minutes} minutos. Ingresa de nuevo."


def _now() -> float:
    return time.time()


class OperatorIdleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefix = reverse("admin:index")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self.prefix) and SESSION_KEY in request.session:
            user = request.user
            if not (user.is_authenticated and user.is_staff):
                return self._access_withdrawn(request)
            now = _now()
            seen = request.session.get(SEEN_KEY)
            started = request.session.get(STARTED_KEY)
            if not isinstance(started, int | float):
                # Set at the sign-in (operator_session_started); a session older than that code starts now.
                request.session[STARTED_KEY] = started = now
            if _withdrawn_since(user.pk, started):
                return self._access_withdrawn(request)
            absolute, idle = settings.SESSION_COOKIE_AGE, settings.OPERATOR_IDLE_SECONDS
            if now - started > absolute:
                return self._signed_out(request, "tiempo máximo", ABSOLUTE_MESSAGE, absolute)
            if isinstance(seen, int | float) and now - seen > idle:
                return self._signed_out(request, "inactividad", IDLE_MESSAGE, idle)
            if request.method != "HEAD":
                # Checked, not renewed, by a HEAD: no operator at the desk asked for it (browsers send
                # none of their own), and it kept an unattended back office open.
                request.session[SEEN_KEY] = now
        return self.get_response(request)

    def _access_withdrawn(self, request: HttpRequest) -> HttpResponse:
        """The session of an operator deactivated (is_active), deleted or no longer staff ends here.

        Django only stops reading such a session as signed in: it keeps it, and made active or staff
        again, the operator's old session (and any copy of its id) was signed in again, verified, with
        no password or code (review, 2026-12-06). Ended at its first request since: the change itself
        is already an `operator_staff_changed` event. A session with no request between the change
        and its undoing is ended too: it was signed in before the access was withdrawn
        (`OperatorAccessWithdrawn`)."""
        request.staff_logout_reason = "sin acceso"  # type: ignore[attr-defined]  # for the audit event
        logout(request)  # an inactive or deleted user is no user here: no `staff_logout` then
        return self.get_response(request)

    def _signed_out(self, request: HttpRequest, reason: str, message: str, seconds: int) -> HttpResponse:
        request.staff_logout_reason = reason  # type: ignore[attr-defined]  # for the audit event
        logout(request)  # the session is flushed; its `staff_logout` event names the reason
        messages.warning(request, message.format(minutes=round(seconds / 60)))
        login = reverse("admin:login")
        return HttpResponseRedirect(f"{login}?next={quote(request.get_full_path())}")


def _withdrawn_since(user_id: int, started: float) -> bool:
    """Whether the operator was saved without access after this session signed in (one query on an
    operator's page; members' pages never come here)."""
    from oficina.backoffice.models import OperatorAccessWithdrawn

    at = OperatorAccessWithdrawn.objects.filter(user_id=user_id).values_list("at", flat=True).first()
    return at is not None and at.timestamp() >= started


def operator_session_started(request: HttpRequest) -> None:
    """Called at an operator's sign-in: the absolute limit counts from here, under a new session id.

    Django's login() keeps the id when the session is already signed in as the same user with the
    same password: an operator whose device was deleted or replaced (`staff_create --new-device`, a
    lost phone) stays signed in but unverified, and signing in again with the new device verified that
    same id again, with a fresh hour, for whoever had copied it (review, 2026-12-06). Every sign-in
    now leaves with an id other than the one the browser came with."""
    came_with = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if came_with is not None and request.session.session_key == came_with:
        request.session.cycle_key()
    request.session[STARTED_KEY] = _now()
