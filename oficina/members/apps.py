from django.apps import AppConfig


class MembersConfig(AppConfig):
    name = "oficina.members"
    verbose_name = "Asociados"
