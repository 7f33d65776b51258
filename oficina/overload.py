"""Load shedding: a request that waited too long for a worker gets "Estamos muy ocupados" at once.

gunicorn's sync workers take one request at a time; when sign-ins arrive faster than the cores can
hash PINs, the excess waits in the listen queue, unseen by the application. The proxy stamps each
request with the time it received it (nginx: `proxy_set_header X-Request-Start "t=${msec}";`), and a
request that waited more than QUEUE_WAIT_SECONDS is answered with the 503 page and `Retry-After`
before anything else runs: no session is read, no PIN attempt counted, no code checked. The member
tries again in a few seconds, and the queue drains instead of growing until the proxy gives up (and
the worker then spends a hash on an answer nobody reads).

Only a trusted proxy's stamp reaches this middleware: oficina.middleware.ProxyHeadersMiddleware, first
in the chain, drops X-Request-Start from anyone else. A stamp in the future (clocks of two hosts) or
unreadable is ignored. The probes never get here: oficina.health's
ProbesMiddleware, before this one, answers them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from oficina.lib.bare import bare_page, logged_here, path_for_log

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


def queue_wait(request: HttpRequest, now: float) -> float | None:
    """Seconds between the proxy receiving the request and now; None without a readable stamp."""
    raw = str(request.META.get("HTTP_X_REQUEST_START", "")).strip()
    if not raw:
        return None
    try:
        stamped = float(raw.removeprefix("t="))
    except ValueError:
        return None
    waited = now - stamped
    return waited if 0 <= waited < 86400 else None


class QueueWaitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.QUEUE_WAIT_SECONDS
        if limit:
            waited = queue_wait(request, time.time())
            if waited is not None and waited > limit:
                path = path_for_log(request)
                logger.warning("request shed after %.1f s in the queue: %s %s", waited, request.method, path)
                return busy(request)
        return self.get_response(request)


def busy(request: HttpRequest) -> HttpResponse:
    """The 503 page, rendered without the request (no session, no user, no CSRF token)."""
    return logged_here(bare_page(request, "errors/503.html", status=503, retry_after=RETRY_AFTER_SECONDS))
