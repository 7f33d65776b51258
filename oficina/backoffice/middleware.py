"""An operator's session ends after OPERATOR_IDLE_SECONDS without a request (an unattended desk).

The session's absolute limit (SESSION_ABSOLUTE_SECONDS, one hour) bounds a day's sign-in; this bounds
the minutes a back office left open on a desk can be used by whoever sits down. Only the operators'
pages are looked at: members' requests never load an operator's session here.
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
IDLE_MESSAGE = "Tu sesión de operador se cerró tras {minutes} minutos sin actividad. Ingresa de nuevo."


def _now() -> float:
    return time.time()


class OperatorIdleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefix = reverse("admin:index")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self.prefix) and SESSION_KEY in request.session:
            now = _now()
            seen = request.session.get(SEEN_KEY)
            if isinstance(seen, int | float) and now - seen > settings.OPERATOR_IDLE_SECONDS:
                return self._signed_out(request)
            request.session[SEEN_KEY] = now
        return self.get_response(request)

    def _signed_out(self, request: HttpRequest) -> HttpResponse:
        request.staff_logout_reason = "inactividad"  # type: ignore[attr-defined]  # for the audit event
        logout(request)  # the session is flushed; its `staff_logout` event names the reason
        minutes = round(settings.OPERATOR_IDLE_SECONDS / 60)
        messages.warning(request, IDLE_MESSAGE.format(minutes=minutes))
        login = reverse("admin:login")
        return HttpResponseRedirect(f"{login}?next={quote(request.get_full_path())}")
