"""Probes for the load balancer: /healthz (the process answers) and /readyz (it can do its work)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.http import require_safe

from oficina.lib.bare import logged_here

logger = logging.getLogger(__name__)


@never_cache
@xframe_options_deny
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@xframe_options_deny
@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    checks: dict[str, str] = {}  # for the log: "ok", or what failed
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"
        checks["database"] = f"error: {type(exc).__name__}"
    if settings.REDIS_URL:
        try:
            cache.set("readyz", "1", timeout=5)
            checks["cache"] = "ok" if cache.get("readyz") == "1" else "error: read back failed"
        except Exception as exc:  # any failure means "not ready"
            checks["cache"] = f"error: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    # The answer says which check failed, not how: the exception's class (which driver, which fault)
    # is for the operators' log below, not for whoever can reach the probe (docs/security.md G16).
    shown = {name: "ok" if value == "ok" else "error" for name, value in checks.items()}
    response = JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": shown}, status=200 if ready else 503
    )
    if ready:
        return response
    # One WARNING line naming what failed, as every 503 (docs/operations.md), instead of Django's
    # «Service Unavailable: /readyz» at ERROR, which says nothing of the cause.
    failed = ", ".join(f"{name} {value}" for name, value in checks.items() if value != "ok")
    logger.warning("not ready, answered 503 to the probe: %s", failed)
    return logged_here(response)


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz}


class ProbesMiddleware:
    """Answers /healthz and /readyz before anything reads the Host header.

    A balancer probes each instance by its own address (Host: 10.0.0.5:8000), often over plain HTTP.
    CommonMiddleware checks the Host against ALLOWED_HOSTS on every request (400), so the probes are
    answered here, after SecurityMiddleware and SecurityHeadersMiddleware (their headers still apply;
    SECURE_REDIRECT_EXEMPT spares these two paths the HTTPS redirect) and before sessions, CSRF and
    the member's session: a probe reads no cookie and sets none. Every other path keeps both checks.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is None:
            return self.get_response(request)
        response = probe(request)
        response.headers["Content-Length"] = str(len(response.content))  # as CommonMiddleware would
        return response
