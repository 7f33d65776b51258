from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "oficina.audit"
    verbose_name = "Auditoría"

    def ready(self) -> None:
        from oficina.audit import checks  # noqa: F401  (registers the deploy check)
