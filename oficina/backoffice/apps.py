from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class BackofficeConfig(AppConfig):
    """What the cooperative's operators do at the counter: member help, imports, audit and proof."""

    default = True
    name = "oficina.backoffice"
    verbose_name = "Operadores"

    def ready(self) -> None:
        from oficina.backoffice import signals  # noqa: F401  (connects the audit receivers)


class OperatorAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin whose default site asks staff for a TOTP token as well as the password."""

    default = False
    default_site = "oficina.backoffice.sites.OperatorAdminSite"
