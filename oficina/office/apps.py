from django.apps import AppConfig


class OfficeConfig(AppConfig):
    name = "oficina.office"
    verbose_name = "Oficina Virtual"
