from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from oficina.csp_report import CSP_REPORT_PATH, REPORTING_ENDPOINT
from oficina.lib.client import from_trusted_proxy

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    f"report-uri {CSP_REPORT_PATH}; report-to {REPORTING_ENDPOINT}"
)
# Where `report-to` sends the reports (oficina/csp_report.py); resolved against the page's own address.
REPORTING_ENDPOINTS = f'{REPORTING_ENDPOINT}="{CSP_REPORT_PATH}"'
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
# oficina/branding.py: the cooperative's colour and logo, public and cacheable like /static/.
BRAND_PATHS = frozenset({"/marca.css", "/marca/logo"})


class SecurityHeadersMiddleware:
    """A strict CSP (no inline script or style), reported to CSP_REPORT_PATH, resources for this
    origin only, and no caching of any page: every page here is private. Placed above Django's
    SecurityMiddleware, so that what that one refuses carries the headers too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.headers.setdefault("Reporting-Endpoints", REPORTING_ENDPOINTS)
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        # No other site may load anything of ours as a subresource (an <img>, a <script>, a fetch in
        # no-cors mode): the browser drops it, so a page's or an image's bytes never reach another
        # site's process (Spectre) nor tell it anything. Above WhiteNoise: its static files get it too.
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        # Also set by Django's SecurityMiddleware and XFrameOptionsMiddleware, below this one; repeated
        # here for the responses they never see: a Host this site does not serve is refused (400) while
        # SecurityMiddleware builds its HTTPS redirect, before any middleware under it runs.
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        # Only the assets themselves may be kept: an error page at an asset's address (a 404 under
        # /static/, a POST to /marca.css) is a page like any other, with a signed-in member's
        # «Cerrar sesión» form and its CSRF token. Nor an asset that sets a cookie: /marca.css and
        # /marca/logo go through the sessions, and a signed-in member's request renews the idle clock,
        # so it may carry their session id, which no shared cache may keep.
        asset = request.path.startswith("/static/") or request.path in BRAND_PATHS
        if not asset or response.status_code >= 400 or response.cookies:
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        return response


# What only our own proxy may tell: the scheme (Django's SECURE_PROXY_SSL_HEADER), the client's address
# (oficina.lib.client) and when the request arrived (oficina.overload).
PROXY_HEADERS = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_FOR", "HTTP_X_REQUEST_START")


class ProxyHeadersMiddleware:
    """First of all: drops the proxy's headers from a request that did not come through a trusted
    proxy (TRUSTED_PROXIES). Django reads X-Forwarded-Proto from any peer, so without this a client
    reaching gunicorn directly could claim HTTPS (gunicorn's forwarded_allow_ips does not stop it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if any(name in meta for name in PROXY_HEADERS) and not from_trusted_proxy(request):
            for name in PROXY_HEADERS:
                meta.pop(name, None)
        return self.get_response(request)


SAFE_METHODS = frozenset({"GET", "HEAD"})


def fetch_allowed(request: HttpRequest) -> bool:
    """The resource isolation policy of Fetch Metadata (web.dev, «Protect your resources from web
    attacks with Fetch Metadata»), from the headers the browser itself sets and no page can forge.

    Allowed: a request without them (a browser too old to send them, curl, monitors, the probes);
    one from this origin (`same-origin`); one the member made by typing the address or opening a
    bookmark (`none`); and a top-level navigation that changes nothing (GET or HEAD, mode `navigate`,
    destination `document`), so that a member following the cooperative's website or a link in a
    message lands on «Ingresa tu usuario». Refused: any other request from another site, `same-site`
    included. Same-site is the cooperative's other subdomains (its website, on another server and
    software), and SameSite=Strict cookies ride with their requests: nothing there needs to post to
    this portal, embed it or fetch from it. The operators' back office shares this origin (G6), so
    this policy cannot tell it from the members' pages; a cross-site navigation to it carries no
    cookie (Strict) and lands on its sign-in page."""
    # From META, not request.headers: building that mapping of every header cost ~19 µs a request,
    # on every request, and nothing else on a member's sign-in reads it (bench/instructions.py).
    meta = request.META
    site = meta.get("HTTP_SEC_FETCH_SITE")
    if site is None or site in {"same-origin", "none"}:
        return True
    return (
        request.method in SAFE_METHODS
        and meta.get("HTTP_SEC_FETCH_MODE") == "navigate"
        and meta.get("HTTP_SEC_FETCH_DEST") == "document"
    )


class FetchMetadataMiddleware:
    """Refuses what fetch_allowed does not allow with a Spanish 403 (oficina/errors.py::cross_site_refused).

    Below WhiteNoise (static files are public, the same for everyone, and CORP keeps other sites from
    using them) and the CSP reports' address; above the sessions, CSRF, the member's session and
    every view: a refused request reads and writes no session, counts no rate limit and reaches no
    form. It only leaves its own trace (a log line; an audit event once per client and minute)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if fetch_allowed(request):
            return self.get_response(request)
        from oficina.errors import cross_site_refused

        return cross_site_refused(request)
