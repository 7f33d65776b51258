from __future__ import annotations

from django.urls import path

from oficina.signin import views

app_name = "signin"

urlpatterns = [
    path("", views.identify, name="identify"),
    path("olvido-su-usuario/", views.forgot_user, name="forgot_user"),
    path("clave/", views.password, name="password"),
    path("olvide-mi-clave/", views.forgot_pin, name="forgot_pin"),
    path("olvide-mi-clave/enviado/", views.code_sent, name="code_sent"),
    path("nueva-clave/", views.new_pin, name="new_pin"),
    path("nueva-clave/confirmar/", views.confirm_pin, name="confirm_pin"),
    path("imagen-y-frase/", views.security_image, name="security_image"),
    path("politica-de-datos/", views.policy, name="policy"),
    path("politica-de-datos/mis-solicitudes/", views.policy_requests, name="policy_requests"),
    path("listo/", views.done, name="done"),
    path("necesito-mas-tiempo/", views.more_time, name="more_time"),
]
