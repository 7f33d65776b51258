from django.apps import AppConfig


class AntiphishingConfig(AppConfig):
    name = "oficina.antiphishing"
    verbose_name = "Imagen y frase de seguridad"

    def ready(self) -> None:
        from oficina.antiphishing import checks  # noqa: F401  (registers the deploy check)
