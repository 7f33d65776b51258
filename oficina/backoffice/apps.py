from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django_otp.plugins.otp_totp import apps as totp_apps
from django_tasks_db import apps as tasks_apps


class BackofficeConfig(AppConfig):
    """What the cooperative's operators do at the counter: member help, imports, audit and proof."""

    default = True
    name = "oficina.backoffice"
    verbose_name = "Operadores"

    def ready(self) -> None:
        from oficina.backoffice import signals  # noqa: F401  (connects the audit receivers)
        from oficina.backoffice.labels import library_models_named

        library_models_named()


class OperatorAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin whose default site asks staff for a TOTP token as well as the password."""

    default = False
    default_site = "oficina.backoffice.sites.OperatorAdminSite"


# The libraries' apps under a Spanish name in the back office (Django's way to rename an app one
# installs: INSTALLED_APPS names a subclass of its AppConfig). Same app, label, models and tables;
# django-otp's would be «Otp_Totp», django-tasks-db's «Tasks Database Backend».
class OperatorDevicesConfig(totp_apps.DefaultConfig):
    default = False
    verbose_name = "Autenticación de operadores"


class BackgroundTasksConfig(tasks_apps.TasksAppConfig):
    default = False
    verbose_name = "Tareas en segundo plano"
