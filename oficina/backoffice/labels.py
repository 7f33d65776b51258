"""Spanish labels for model fields that other apps left without a verbose name, without touching
those models (a verbose_name is migration state): read-only columns and list filters by name."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.filters import FieldListFilter


def shown_as(field: str, label: str) -> Any:
    """A ModelAdmin attribute showing `field` under `label` (list columns and read-only fields)."""

    def show(model_admin: Any, obj: Any) -> Any:
        return getattr(obj, field)

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
