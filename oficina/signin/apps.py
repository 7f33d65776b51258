from django.apps import AppConfig


class SigninConfig(AppConfig):
    name = "oficina.signin"
    verbose_name = "Ingreso"
