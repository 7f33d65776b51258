from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "oficina.consent"
    verbose_name = "Tratamiento de datos"
