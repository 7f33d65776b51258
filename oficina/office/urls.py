from __future__ import annotations

from django.urls import path

from oficina.office import views

app_name = "office"

urlpatterns = [
    path("", views.home, name="home"),
    path("cerrar-sesion/", views.logout, name="logout"),
]
