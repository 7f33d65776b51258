from __future__ import annotations

from django.urls import path

from oficina.office import views

app_name = "office"

urlpatterns = [
    path("", views.home, name="home"),
    path("cerrar-sesion/", views.logout, name="logout"),
    path("seguir-conectado/", views.keep_alive, name="keep_alive"),
    path("bloquear-mi-acceso/", views.self_block, name="self_block"),
]
