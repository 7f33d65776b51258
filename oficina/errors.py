"""Clear Spanish pages for every error: never a bare 500, never a page that can be cached."""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Callable

import redis
from django.core.exceptions import SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from psycopg.errors import LockNotAvailable

from oficina.lib.bare import bare_page, escaped_for_log, logged_here, path_for_log
from oficina.lib.cache import WRITE_REFUSALS, server_reply, unreachable, write_refusal
from oficina.lib.ratelimit import NotCounted, Throttled, first_in_window
from oficina.signin.pin import HasherBusy

logger = logging.getLogger(__name__)

# A service the request needs cannot be reached, or dropped the connection: PostgreSQL unreachable,
# restarted or failing over (Django's OperationalError, and InterfaceError for a connection already
# closed), Redis unreachable or timing out. Not a bug: the same request may work in a minute.
# (A lock_timeout is an OperationalError too, with its own page when a view meets it: see below.)
SERVICE_FAULTS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
SERVICE_FAULT_RETRY_AFTER = 30  # seconds

# psycopg maps whole SQLSTATE classes to OperationalError, most of them no outage: 54 (program limit
# exceeded: an index row too large for a value a form let through), 53100 (disk full), 57014
# (statement_timeout)... and SQLite reports a missing table or column (a migration not applied) as
# one. Only these are the service being away or busy for a moment; any other error the server
# answered is a bug's or an operator's, and keeps the 500 page with Django's ERROR and traceback.
# (Review, 2026-12-06.)
TRANSIENT_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, recovering)
        "53300",  # too_many_connections
        "55P03",  # lock_not_available (lock_timeout)
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
    }
)
TRANSIENT_SQLITE = ("database is locked", "database table is locked", "unable to open database file")


def is_service_fault(exception: BaseException) -> bool:
    """Whether `exception` is the database or Redis away or busy for a moment (retrying may work),
    rather than a bug that retrying never cures."""
    if not isinstance(exception, SERVICE_FAULTS):
        return False
    if not isinstance(exception, OperationalError | InterfaceError):
        return unreachable(exception)  # Redis: not a wrong password or ACL, configuration
    if not isinstance(exception, OperationalError):
        return True
    cause = exception.__cause__
    if cause is None:
        return True  # raised by Django itself, not by a driver that answered
    if isinstance(cause, sqlite3.Error):
        return str(cause).startswith(TRANSIENT_SQLITE)
    sqlstate = getattr(cause, "sqlstate", None)
    # No SQLSTATE: the client's own failure (connection refused, closed by the server, timed out).
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in TRANSIENT_SQLSTATES


def wait_in_words(seconds: int) -> str:
    """How long the 429 page asks to wait, from its Retry-After: «unos minutos» was wrong by hours for
    the daily counts (RATE_LIMITS' /d rules, CODE_SENDS_PER_DAY's hourly sibling)."""
    if seconds <= 60:
        return "un minuto"
    if seconds <= 90 * 60:
        return f"{-(-seconds // 60)} minutos"
    return f"{-(-seconds // 3600)} horas"  # more than 90 minutes: 2 or more


def throttled_record(request: HttpRequest, exception: Throttled) -> None:
    """The audit's `throttled` event for a refusal, only the window's first for its rule and client (or
    cédula, operator, cookie): a script hammering a throttled address got one row per request."""
    if exception.first:
        from oficina.audit.services import event_record

        event_record("throttled", request=request, action=exception.action, per=exception.per)


class FriendlyErrorsMiddleware:
    """Turns rate limits (429), a saturated hasher (503), a database or Redis fault (503), Redis
    refusing writes (503) and Django's blank 405 (an address opened that only a button posts to, such
    as «Cerrar sesión») into pages a member understands. A fault met before the view (a middleware
    reading the member's row) reaches `server_error` instead, which answers it with the same page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 405 and not response.content:
            return method_not_allowed(request, allow=response["Allow"])
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, Throttled):
            throttled_record(request, exception)
            response = render(
                request, "errors/429.html", {"wait": wait_in_words(exception.retry_after)}, status=429
            )
            response["Retry-After"] = str(exception.retry_after)
            return response
        if isinstance(exception, OperationalError) and isinstance(exception.__cause__, LockNotAvailable):
            # lock_timeout (DATABASE_LOCK_TIMEOUT_MS): the row is held by a long transaction, e.g. a
            # registry import changing this member's contacts (docs/security.md G18). Rolled back.
            logger.warning(
                "a row lock outlasted lock_timeout; asked the client to retry: %s %s",
                request.method,
                path_for_log(request),
            )
            response = render(request, "errors/503_updating.html", status=503)
            response["Retry-After"] = "60"
            return logged_here(response)
        if isinstance(exception, HasherBusy):
            logger.warning(
                "hasher saturated; asked the client to retry: %s %s", request.method, path_for_log(request)
            )
            response = render(request, "errors/503.html", status=503)
            response["Retry-After"] = "2"
            return logged_here(response)
        return service_fault_page(request, exception)


def method_not_allowed(request: HttpRequest, *, allow: str) -> HttpResponse:
    from oficina.signin.flows.login import MEMBER_SESSION_KEY

    session = getattr(request, "session", None)
    signed_in = session is not None and MEMBER_SESSION_KEY in session
    response = render(request, "errors/405.html", {"signed_in": signed_in}, status=405)
    response["Allow"] = allow
    return response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    response = render(request, "errors/400.html", status=400)
    if not isinstance(exception, SuspiciousOperation):
        return response
    # Django logs a request it refuses as suspicious (a Host not in ALLOWED_HOSTS, a form of more than
    # 1,000 fields or 100 files) at ERROR with its traceback, the level an alert wakes someone for a
    # bug; any client sends one at will, and the Internet's scanners probe the server's address all day
    # (pen test over HTTP, 2026-12-06). One WARNING line instead, on the same django.security logger.
    logging.getLogger(f"django.security.{type(exception).__name__}").warning(
        "refused as suspicious, answered 400 to %s %s: %s",
        request.method,
        path_for_log(request),
        exception,
        extra={"status_code": 400, "request": request},  # as Django's own line
    )
    return logged_here(response)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """An operator refused a page or an action their role does not allow (ASVS V16.3.2) is an audit
    event. Only a verified operator's refusals: anyone else is sent to a sign-in page before a
    permission is checked, so a stranger cannot fill the chain with them."""
    user = getattr(request, "user", None)
    verified = getattr(user, "is_verified", None)  # django-otp's OTPMiddleware sets it
    if user is not None and user.is_authenticated and user.is_staff and callable(verified) and verified():
        from oficina.audit.services import event_record

        event_record(
            "operator_permission_denied",
            request=request,
            operator=user.get_username(),
            method=request.method,
            path=request.path[:200],
        )
    return render(request, "errors/403.html", status=403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # A bare page (oficina/lib/bare.py): the session or database may be what failed. Django calls this
    # handler inside the `except` that caught the exception (a middleware's, or a view's that no
    # process_exception answered): sys.exc_info() still holds it
    # (django/core/handlers/exception.py, response_for_exception -> handle_uncaught_exception).
    exception = sys.exc_info()[1]
    # A fault met before a view: the CSP reports' count, the office's read of the member's row, a
    # middleware's session write.
    page = service_fault_page(request, exception) if exception is not None else None
    return page or bare_page(request, "errors/500.html", status=500)


def service_fault_page(request: HttpRequest, exception: BaseException) -> HttpResponse | None:
    """The page of a database or Redis fault, whether a view met it (FriendlyErrorsMiddleware) or a
    middleware before the view did (`server_error`); None for anything else (a bug: the 500 page)."""
    if isinstance(exception, NotCounted):
        return not_counted(request, exception)
    if is_service_fault(exception):
        return service_unavailable(request, exception)
    if write_refusal(exception) is not None:
        return redis_refused(request, exception, consequence="a change may or may not be saved")
    return None


def not_counted(request: HttpRequest, exception: NotCounted) -> HttpResponse:
    """A rate limit's count failed (oficina.lib.ratelimit.NotCounted). Every view counts before it
    changes anything, so the page is the 503 that says «No se hizo ningún cambio», whether Redis refused
    the write or could not be reached; the log line is each fault's own: the service faults' WARNING
    for Redis unreachable (a moment's outage, `service_unavailable`), the refusal's ERROR otherwise
    (`redis_refused`). Redis unreachable got the service faults' «puede que haya quedado guardado o
    no», though nothing had changed."""
    cause = exception.__cause__
    if cause is not None and is_service_fault(cause):
        return service_unavailable(request, cause, unchanged=True)
    return redis_refused(request, cause or exception, consequence=exception.consequence, unchanged=True)


def service_unavailable(
    request: HttpRequest, exception: BaseException, *, unchanged: bool = False
) -> HttpResponse:
    """PostgreSQL or Redis failed under the request: «el servicio no está disponible por un momento»
    (503, Retry-After). A connection that drops may take a commit with it or not, so the page does not
    say that nothing changed: it asks the member to check a change before repeating it. Unless the
    caller knows that nothing changed (`unchanged`: Redis failed at a rate limit's count, `not_counted`),
    where it says so («No se hizo ningún cambio», the page of a refused count).

    Rendered as the 500 page, without the request's context processors: neither the database nor the
    session is touched. One warning line per request names the fault for the operators (the exception,
    the driver's error under it, its first line), without a traceback: during an outage every request
    fails alike. The session is not saved, as on a 500 (Django's SessionMiddleware saves none on a
    5xx)."""
    cause = exception.__cause__
    detail = (str(exception).strip().splitlines() or [""])[0][:200]
    logger.warning(
        "a service failed under the request; answered 503 to %s %s: %s%s: %s",
        request.method,
        path_for_log(request),
        type(exception).__name__,
        f" ({type(cause).__module__}.{type(cause).__name__})" if cause is not None else "",
        detail,
    )
    template = "errors/503_unchanged.html" if unchanged else "errors/503_unavailable.html"
    response = bare_page(request, template, status=503, retry_after=SERVICE_FAULT_RETRY_AFTER)
    # Logged above: Django's request logger would add an ERROR line («Service Unavailable: /path»),
    # with the whole traceback when the fault came before the view.
    return logged_here(response)


def redis_refused(
    request: HttpRequest, exception: BaseException, *, consequence: str, unchanged: bool = False
) -> HttpResponse:
    """Redis answers but refuses writes (oficina.lib.cache.WRITE_REFUSALS) under the request: 503,
    «El servicio no está disponible por un momento», rendered as the 500 page (the session is not
    saved), and the operators' line (`redis_refused_log`, with `consequence`). When the caller knows
    nothing changed (`unchanged`: a rate limit's count, which every view makes before it changes
    anything, `not_counted`; a GET's session write, oficina/lib/sessions.py) the page says «No se hizo
    ningún cambio». Met anywhere else (a session moved to a new id after a temporary code was spent, an
    operator's unlock forgetting the PIN's counts after it is saved, a session ended for idleness by
    the office's middleware) a change may stand, and the page is the service faults' own, «puede que
    haya quedado guardado o no». After a POST's view, a session that cannot be saved has its own page
    (oficina/lib/sessions.py)."""
    redis_refused_log(request, exception, consequence)
    template = "errors/503_unchanged.html" if unchanged else "errors/503_unavailable.html"
    response = bare_page(request, template, status=503, retry_after=SERVICE_FAULT_RETRY_AFTER)
    return logged_here(response)  # logged: not Django's «Service Unavailable» line as well


def redis_refused_log(request: HttpRequest, exception: BaseException, consequence: str) -> None:
    """One ERROR line, without a traceback, naming the refusal for the operators, e.g. «Redis refuses
    writes (OOM: used memory at maxmemory and nothing to evict), answered 503 to POST /: rate limit
    identify not counted; Redis says: command not allowed when used memory > 'maxmemory'.». Only
    Redis's reply: what redis-py puts before it in a pipeline names the command's key, a session's id.

    ERROR, where Redis unreachable is a WARNING: it does not pass on its own, as a failover or a
    restart does. A full Redis stays full while members keep signing in (maxmemory is too small for
    the sessions and counters, which expire on their own), a demoted primary keeps refusing unless
    REDIS_URL's name was moved to the new one (each process then closes its connections at the first
    READONLY and connects again: oficina/lib/cache.py::connection_retry), and meanwhile no member can
    sign in: someone must act.
    No traceback: not a bug (docs/operations.md, «Redis reads but refuses writes»)."""
    code = write_refusal(exception) or "?"
    logger.error(
        "Redis refuses writes (%s: %s), answered 503 to %s %s: %s; Redis says: %s",
        code,
        WRITE_REFUSALS.get(code, type(exception).__name__),
        request.method,
        path_for_log(request),
        consequence,
        escaped_for_log(server_reply(exception).strip()[:200]),
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    from oficina.audit.services import event_record

    if first_in_window("csrf_refused", request):  # one per client and minute (lib/ratelimit.py)
        event_record("csrf_refused", request=request, path=request.path[:200])
    return render(request, "errors/403_csrf.html", status=403)


def cross_site_refused(request: HttpRequest) -> HttpResponse:
    """A request another site made the browser send (oficina/middleware.py::fetch_allowed), refused
    before the session, CSRF or any view: rendered without the request's context (its session is not
    read), one WARNING line, and a `cross_site_refused` event once per client and minute, as a CSRF
    failure (`csrf_refused`), so that a page forging them cannot fill the trail."""
    from oficina.audit.services import event_record

    request.get_host()  # a Host this site does not serve: 400 first, as on every other path
    fetch = {
        name: request.headers.get(f"Sec-Fetch-{name.capitalize()}", "")[:40]
        for name in ("site", "mode", "dest")
    }
    logger.warning(
        "refused a request from another site, answered 403 to %s %s: Sec-Fetch-Site %s, Mode %s, Dest %s",
        request.method,
        path_for_log(request),
        *(escaped_for_log(value) or "-" for value in fetch.values()),
    )
    if first_in_window("cross_site_refused", request):
        event_record(
            "cross_site_refused",
            request=request,
            path=request.path[:200],
            method=request.method,
            site=fetch["site"],
            mode=fetch["mode"],
            dest=fetch["dest"],
        )
    return logged_here(bare_page(request, "errors/403_cross_site.html", status=403))
