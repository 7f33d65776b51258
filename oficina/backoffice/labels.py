"""Spanish labels for model fields that other apps left without a verbose name, without touching
those models (a verbose_name is migration state): read-only columns and list filters by name."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.filters import FieldListFilter
from django.contrib.admin.utils import display_for_value


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
