"""Error pages and log lines for a request whose own machinery may be what failed.

A page answered when the database, Redis or the session failed (or before any of them was read: a
request shed from gunicorn's queue) is rendered without the request's context processors, which read
the session and the user: only the cooperative's branding. And a log line naming the request escapes
its path, as Django's own request log does since 5.2.2 (CVE-2025-48432): a `%0A` in the address must
not write a line of its own.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string


def logged_here(response: HttpResponse) -> HttpResponse:
    """Marks an answer whose cause this application has already logged (one WARNING line naming the
    path): Django's own «Service Unavailable: /path» at ERROR, the level an alert wakes someone for,
    would be a second line for the same request, and a busy minute would look like a failing
    application."""
    response._has_been_logged = True  # type: ignore[attr-defined]  # read by django.utils.log.log_response
    return response


def bare_page(
    request: HttpRequest, template: str, *, status: int, retry_after: int | None = None
) -> HttpResponse:
    from oficina.context_processors import branding

    response = HttpResponse(render_to_string(template, branding(request)), status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def escaped_for_log(text: str) -> str:
    """`text` with newlines and other control characters escaped, so that it writes no line of its own
    (what the request, a header or a browser's report carries is anybody's to choose)."""
    return text.encode("unicode_escape").decode("ascii")


def path_for_log(request: HttpRequest) -> str:
    return escaped_for_log(request.path[:200])
