"""CSP violation reports (ASVS V3.4.7): what the policy blocked in a member's browser, as a log line.

Every page's policy names this address twice: `report-uri` (the legacy reports, one POST of
`application/csp-report` per violation) and `report-to`, the endpoint `Reporting-Endpoints` declares
(the Reporting API: batches of `application/reports+json`; a browser that knows it ignores
`report-uri`). Browsers send them on their own, without a CSRF token, so the address is answered by a
middleware before the sessions and CSRF: a report reads no cookie, writes no session (it would renew a
member's idle clock) and touches no database. What it costs is bounded: the per-client limit
(`RATE_LIMIT_CSP_REPORT`, one cache round trip), a body of at most 16 KiB, and one log line naming at
most three violations, each field cut short, URLs without their query. Nothing is stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse

from oficina.lib.bare import escaped_for_log, logged_here
from oficina.lib.ratelimit import Throttled, ratelimit_consume

logger = logging.getLogger(__name__)

CSP_REPORT_PATH = "/csp-report"
REPORTING_ENDPOINT = "csp"  # the name `report-to` gives the address in Reporting-Endpoints
MAX_REPORT_BYTES = 16 * 1024  # a report is ~1 KiB; a batch of a page's violations a few
MAX_LOGGED = 3  # violations named per request; the line counts the rest
MAX_FIELD = 100  # characters of each field in the line
LEGACY = "application/csp-report"
REPORTING_API = "application/reports+json"
# Older Chromium sent the legacy report as application/json.
CONTENT_TYPES = frozenset({LEGACY, REPORTING_API, "application/json"})


def _field(value: object) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        return "-"
    return escaped_for_log(str(value)[:MAX_FIELD]) or "-"


def _url(value: object) -> str:
    """A URL without its query or fragment (they may hold anything); keywords (`inline`, `eval`)
    as they are."""
    if not isinstance(value, str):
        return _field(value)
    parts = urlsplit(value[:2000])
    return _field(f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else parts.path)


def _violations(payload: Any) -> list[str]:
    """One short description per violation, from either format; whatever is not a report is skipped."""
    if isinstance(payload, dict) and isinstance(payload.get("csp-report"), dict):
        legacy = payload["csp-report"]
        bodies = [
            {
                "directive": legacy.get("effective-directive") or legacy.get("violated-directive"),
                "blocked": legacy.get("blocked-uri"),
                "document": legacy.get("document-uri"),
                "source": legacy.get("source-file"),
                "line": legacy.get("line-number"),
                "disposition": legacy.get("disposition"),
            }
        ]
    elif isinstance(payload, list):
        bodies = [
            {
                "directive": body.get("effectiveDirective"),
                "blocked": body.get("blockedURL"),
                "document": body.get("documentURL") or report.get("url"),
                "source": body.get("sourceFile"),
                "line": body.get("lineNumber"),
                "disposition": body.get("disposition"),
            }
            for report in payload
            if isinstance(report, dict)
            and report.get("type") == "csp-violation"
            and isinstance(body := report.get("body"), dict)
        ]
    else:
        bodies = []
    return [
        f"{_field(body['directive'])} blocked {_url(body['blocked'])} on {_url(body['document'])}"
        f" (source {_url(body['source'])}:{_field(body['line'])}, {_field(body['disposition'])})"
        for body in bodies
    ]


def _bare(status: int) -> HttpResponse:
    return HttpResponse(status=status)


def csp_report(request: HttpRequest) -> HttpResponse:
    request.get_host()  # a Host this site does not serve: 400, as on every other path (CommonMiddleware)
    if request.method != "POST":
        response = _bare(405)
        response["Allow"] = "POST"
        return response
    # Counted before the body is read: a flood of large or malformed reports is limited too.
    try:
        ratelimit_consume(request, action="csp_report")
    except Throttled as throttled:
        if throttled.first:  # one line per window and client, not one per refused report
            logger.warning(
                "CSP reports over RATE_LIMIT_CSP_REPORT from one client: refused (429) for %s s",
                throttled.retry_after,
            )
        response = _bare(429)
        response["Retry-After"] = str(throttled.retry_after)
        return logged_here(response)  # not Django's «Too Many Requests» line for each of them
    if request.content_type not in CONTENT_TYPES:
        return _bare(415)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_REPORT_BYTES:
        return _bare(413)  # refused unread
    body = request.read(MAX_REPORT_BYTES + 1)
    if len(body) > MAX_REPORT_BYTES:
        return _bare(413)
    try:
        payload = json.loads(body)
    except ValueError:  # not JSON, or not UTF-8
        return _bare(400)
    violations = _violations(payload)
    if not violations:
        return _bare(400)
    more = len(violations) - MAX_LOGGED
    logger.warning(
        "CSP violation reported: %s%s",
        "; ".join(violations[:MAX_LOGGED]),
        f"; and {more} more" if more > 0 else "",
    )
    return _bare(204)


class CspReportMiddleware:
    """Answers CSP_REPORT_PATH, above the sessions and CSRF (the module's docstring says why), and
    above the Fetch Metadata policy: the browser sends its reports on its own, and what one may
    cause is a log line, the same from anyone with curl."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == CSP_REPORT_PATH:
            return csp_report(request)
        return self.get_response(request)
