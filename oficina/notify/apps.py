from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "oficina.notify"
    verbose_name = "Mensajes"
