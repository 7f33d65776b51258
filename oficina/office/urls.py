from __future__ import annotations

from django.urls import path

from oficina.office import security_views, views

app_name = "office"

urlpatterns = [
    path("", views.home, name="home"),
    path("cerrar-sesion/", views.logout, name="logout"),
    path("seguir-conectado/", views.keep_alive, name="keep_alive"),
    path("bloquear-mi-acceso/", views.self_block, name="self_block"),
    path("mis-datos/", views.data_requests, name="data_requests"),
    path("confirmar-clave/", security_views.stepup, name="stepup"),
    path("mas-tiempo-para-el-cambio/", security_views.stepup_more_time, name="stepup_more_time"),
    path("cambiar-clave/", security_views.change_pin, name="change_pin"),
    path("cambiar-clave/confirmar/", security_views.change_pin_confirm, name="change_pin_confirm"),
    path("imagen-y-frase/", security_views.security_image, name="security_image"),
    path("datos-de-contacto/", security_views.contact, name="contact"),
    path("datos-de-contacto/confirmar/", security_views.contact_confirm, name="contact_confirm"),
]
