"""Spanish labels for model fields that other apps left without a verbose name, without touching
those models (a verbose_name is migration state): read-only columns and list filters by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.admin.filters import FieldListFilter
from django.contrib.admin.utils import display_for_value
from django.contrib.auth.models import Permission
from django.templatetags.static import static
from django.utils.html import format_html


def shown_as(field: str, label: str) -> Any:
    """A ModelAdmin attribute showing `field` under `label` (list columns and read-only fields).

    The value is shown as the list shows it (a date and time in TIME_ZONE, «6 de diciembre de 2026 a
    las 16:36»; nothing as «-»): Django's read-only fields print what a method returns as it is, and
    the pages of a member, a data request or an event said «2026-12-06 21:36:12.870894+00:00» (UTC,
    beside the list's local times and the page's own fields in local time) and «None» (operators'
    walk-through, 2026-12-06)."""

    def show(model_admin: Any, obj: Any) -> Any:
        return display_for_value(getattr(obj, field), model_admin.get_empty_value_display())

    return admin.display(description=label, ordering=field)(show)


def choice_shown_as(field: str, label: str) -> Any:
    """shown_as for a field with choices: what its value means ("Recibida, en trámite"), not the value."""

    def show(model_admin: Any, obj: Any) -> Any:
        return getattr(obj, f"get_{field}_display")()

    return admin.display(description=label, ordering=field)(show)


def filter_titled(title: str, base: type[FieldListFilter] = admin.AllValuesFieldListFilter) -> Any:
    """A list filter on a field (use as `("field", filter_titled("título"))`) under a Spanish title."""

    class Titled(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.title = title

    return Titled


def yes_no_shown_as(field: str, label: str) -> Any:
    """shown_as for a yes/no field: Django's icon, with «Sí» or «No» as its text. Django's own boolean
    column writes the icon's text (what a screen reader says) as «True» or «False»."""

    def show(model_admin: Any, obj: Any) -> Any:
        value = getattr(obj, field)
        if value is None:
            return model_admin.get_empty_value_display()
        icon = static(f"admin/img/icon-{'yes' if value else 'no'}.svg")
        return format_html('<img src="{}" alt="{}">', icon, "Sí" if value else "No")

    return admin.display(description=label, ordering=field)(show)


# What a permission Django made for every model lets do (its codename is "<action>_<model>").
PERMISSION_ACTIONS = {"add": "añadir", "change": "modificar", "delete": "eliminar", "view": "ver"}


def permission_label(permission: Permission) -> str:
    """A permission as the user and group pages list it, in Spanish: «Asociados | asociado | Puede
    modificar asociado». Django writes each model's permissions in the database once, in English
    («Can change asociado»), whatever the language; its Spanish catalogue cannot translate them. A
    permission of another kind keeps its own name."""
    content_type = permission.content_type
    model = content_type.model_class()
    action, _, model_name = permission.codename.partition("_")
    name = permission.name
    if model is not None and action in PERMISSION_ACTIONS and model_name == model._meta.model_name:
        name = f"Puede {PERMISSION_ACTIONS[action]} {model._meta.verbose_name}"
    return f"{content_type} | {name}"


def library_models_named() -> None:
    """Spanish names for the models of django-otp and Django's auth that the back office shows with
    English ones no catalogue translates: the TOTP device (a plain «TOTP device» in django-otp), and
    the rows that tie a user to a group or a permission, or a group to a permission (Django's
    «user-group relationship», listed as «User_groups object (1)» on a user's or a group's deletion
    page). Set on each model's options once, at start (BackofficeConfig.ready): the names only, not
    the options a migration reads (Options.original_attrs), so no migration of those apps follows.
    django-tasks-db marks its names for translation: the project's catalogue has them (locale/)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from django_tasks_db.models import DBTaskResult

    user_model = get_user_model()
    _named(TOTPDevice, ("dispositivo TOTP", "dispositivos TOTP"))
    _named(
        user_model._meta.get_field("groups").remote_field.through,
        ("pertenencia a un grupo", "pertenencias a grupos"),
        lambda row: f"{row.user} en el grupo {row.group}",
    )
    _named(
        user_model._meta.get_field("user_permissions").remote_field.through,
        ("permiso del usuario", "permisos del usuario"),
        lambda row: f"{row.user}: {permission_label(row.permission)}",
    )
    _named(
        Group.permissions.through,
        ("permiso del grupo", "permisos del grupo"),
        lambda row: f"{row.group}: {permission_label(row.permission)}",
    )
    # «DBTaskResult object (…)» in a task's page title and breadcrumbs: the task and its id. From the
    # path, not django-tasks-db's task_name, which imports the task and fails on a backend that
    # cannot run it later (the demo's immediate backend).
    _named(DBTaskResult, None, lambda row: f"{row.task_path.rsplit('.', 1)[-1]} ({row.pk})")


def _named(model: Any, names: tuple[str, str] | None, text: Callable[[Any], str] | None = None) -> None:
    if names is not None:
        model._meta.verbose_name, model._meta.verbose_name_plural = names
    if text is not None:
        model.__str__ = text
