from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from oficina.lib.client import from_trusted_proxy

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
# oficina/branding.py: the cooperative's colour and logo, public and cacheable like /static/.
BRAND_PATHS = frozenset({"/marca.css", "/marca/logo"})


class SecurityHeadersMiddleware:
    """A strict CSP (no inline script or style) and no caching of any page: every page here is private.
    Placed above Django's SecurityMiddleware, so that what that one refuses carries the headers too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
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
