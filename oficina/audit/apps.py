from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "oficina.audit"
    verbose_name = "Auditoría"
