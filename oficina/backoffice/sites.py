from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django_otp.admin import OTPAdminSite

from oficina.backoffice.forms import OperatorAuthenticationForm
from oficina.lib.ratelimit import ratelimit_consume


class OperatorAdminSite(OTPAdminSite):
    """The operators' site at /operadores/: staff with a strong password AND a verified TOTP device.

    OTPAdminSite.has_permission treats a staff user not verified by a device as not staff at all, so
    every page of the site (and every view wrapped with `admin_view`) sends them back to the login."""

    site_header = "Oficina Virtual — Operadores"
    site_title = "Operadores de la Oficina Virtual"
    index_title = "Atención a asociados"
    login_form = OperatorAuthenticationForm
    login_template = "admin/login.html"  # in Spanish, asks for the authenticator code
    site_url = None  # no "Ver el sitio" link: the members' portal is not the operators' business here

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST":
            username = request.POST.get("username", "")
            key = username.strip().lower()[:150] if isinstance(username, str) else ""
            ratelimit_consume(request, action="staff_login", key=key or None)
        return super().login(request, extra_context)
