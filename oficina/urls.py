from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from oficina import branding

# /healthz and /readyz are answered by oficina.health.ProbesMiddleware, before the Host check.
urlpatterns = [
    path("marca.css", branding.brand_css, name="brand_css"),
    path("marca/logo", branding.brand_logo, name="brand_logo"),
    path("", include("oficina.signin.urls")),
    path("oficina/", include("oficina.office.urls")),
    path("operadores/", admin.site.urls),
]

handler400 = "oficina.errors.bad_request"
handler403 = "oficina.errors.permission_denied"
handler404 = "oficina.errors.not_found"
handler500 = "oficina.errors.server_error"
