from django.apps import AppConfig


class AntiphishingConfig(AppConfig):
    name = "oficina.antiphishing"
    verbose_name = "Imagen y frase de seguridad"
