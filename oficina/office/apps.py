from django.apps import AppConfig


class OfficeConfig(AppConfig):
    name = "oficina.office"
    verbose_name = "Oficina Virtual"

    def ready(self) -> None:
        from oficina import branding  # noqa: F401  (registers the branding system checks)
