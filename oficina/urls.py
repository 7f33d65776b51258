from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("oficina.signin.urls")),
    path("oficina/", include("oficina.office.urls")),
    path("operadores/", admin.site.urls),
]
