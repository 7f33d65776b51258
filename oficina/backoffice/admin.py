"""The import history, the operators' TOTP devices shown without their secrets, and every change to
who may operate (users, groups, devices) recorded in the audit chain."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, Permission
from django.db import router, transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tasks_db.admin import DBTaskResultAdmin
from django_tasks_db.models import DBTaskResult

from oficina.backoffice.labels import filter_titled, permission_label, shown_as, yes_no_shown_as
from oficina.backoffice.models import MemberImport
from oficina.backoffice.services import staff_change_record


class StaffChangesAudited(admin.ModelAdmin):
    """Who may operate is changed here, by superusers: a user made staff or superuser, a password
    set, a group's permissions, a TOTP device deleted. Each change is also an
    `operator_staff_changed` event of the audit chain (who, which model and object, added, changed
    or deleted, and the names of the fields changed; never a value: no password hash, no device
    key), with the groups and permissions granted or taken away by name (`save_related`). Django's
    own admin log is an ordinary table, and deleting a user deletes their entries."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The groups and permissions this save grants and takes away, for its event (`_GRANTED`).

        Django's admin saves the many-to-many fields here, after save_model and before log_change or
        log_addition, so the rows read just before and just after are exactly this save's change. Its
        change message names only the field («Groups»): an auditor could not tell that the operator
        was added to «Supervisores». The object's row was updated by save_model in this transaction,
        so a second superuser saving the same user or group waits for this one to commit and reads
        its rows as they were left (PostgreSQL, READ COMMITTED): neither records the other's change."""
        watched = _access_fields(form)
        before = {field.name: _access_names(form.instance, field) for field in watched}
        super().save_related(request, form, formsets, change)
        granted: dict[str, list[str]] = {}
        for field in watched:
            after = _access_names(form.instance, field)
            if added := sorted(after - before[field.name]):
                granted[f"{field.name}_added"] = added
            if removed := sorted(before[field.name] - after):
                granted[f"{field.name}_removed"] = removed
        setattr(form.instance, _GRANTED, granted)  # the object log_change / log_addition receive

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """Permissions listed by their Spanish names (labels.permission_label), not Django's «Can add …»."""
        if db_field.related_model is Permission:
            kwargs.setdefault("form_class", SpanishPermissions)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)
        staff_change_record(
            obj, action="added", fields=_changed_fields(message), request=request, granted=_granted(obj)
        )
        return entry

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        entry = super().log_change(request, obj, message)
        staff_change_record(
            obj, action="changed", fields=_changed_fields(message), request=request, granted=_granted(obj)
        )
        return entry

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        for obj in queryset:  # before the deletion (the delete view passes a list of one)
            staff_change_record(obj, action="deleted", fields=[], request=request, granted=_held(obj))
        return super().log_deletions(request, queryset)

    def response_action(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        """Django's «Eliminar … seleccionados» records the deletions, then deletes, with no
        transaction (its single-object delete view has one): here both are one."""
        with transaction.atomic(using=router.db_for_write(self.model)):
            return super().response_action(request, queryset)


class SpanishPermissions(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return permission_label(obj)


_GRANTED = "_oficina_staff_granted"


def _access_fields(form: Any) -> list[Any]:
    """The many-to-many fields of the form's object that grant access (groups, permissions) and that
    this form edits."""
    return [
        field
        for field in form.instance._meta.many_to_many
        if field.name in form.fields and field.related_model in (Group, Permission)
    ]


def _access_names(obj: Model, field: Any) -> set[str]:
    """What `obj` holds through `field` now, in the database: groups by name, permissions as
    `app_label.codename` (what has_perm and staff_create name them by; the same in every language)."""
    related = getattr(obj, field.name)
    if field.related_model is Group:
        return set(related.values_list("name", flat=True))
    pairs = related.values_list("content_type__app_label", "codename")
    return {f"{app_label}.{codename}" for app_label, codename in pairs}


def _held(obj: Model) -> dict[str, list[str]]:
    """What deleting `obj` takes away, for its event, read before the deletion: a user's groups and
    permissions, a group's permissions and the users who lose it (`users_removed`, by username). The
    event named only the object: an auditor could not tell whose access a deleted group ended."""
    held = {
        f"{field.name}_removed": names
        for field in obj._meta.many_to_many
        if field.related_model in (Group, Permission) and (names := sorted(_access_names(obj, field)))
    }
    if isinstance(obj, Group) and (users := sorted(obj.user_set.values_list("username", flat=True))):
        held["users_removed"] = users
    return held


def _granted(obj: Model) -> dict[str, list[str]]:
    return getattr(obj, _GRANTED, None) or {}


def _changed_fields(message: Any) -> list[str]:
    """The labels of the fields a change message (ModelAdmin.construct_change_message) names."""
    if not isinstance(message, list):
        return []
    names = {
        str(name)
        for item in message
        if isinstance(item, dict)
        for change in item.values()
        if isinstance(change, dict)
        for name in change.get("fields", [])
    }
    return sorted(names)


class AuditedUserAdmin(StaffChangesAudited, UserAdmin):
    list_display = ("username", "email", "first_name", "last_name", "staff")

    staff = yes_no_shown_as("is_staff", "es staff")  # Django's column said «True» to a screen reader

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """«Último inicio de sesión» and «Fecha de alta» each name the pair of boxes, date and time,
        that Django's AdminSplitDateTime writes after them: its <label> points at neither, and the
        words before each box («Fecha:», «Hora:») are plain text, so a screen reader named both boxes
        nothing (axe, tests/browser/test_backoffice.py). Each box is named by the field and its part."""
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and isinstance(field.widget, AdminSplitDateTime):
            name = capfirst(db_field.verbose_name)
            date, time = field.widget.widgets
            date.attrs["aria-label"] = f"{name}: fecha"
            time.attrs["aria-label"] = f"{name}: hora"
        return field

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        """Django saves the password, then logs it, with no transaction around them: here they are one,
        so a refused event leaves the old password (never a reset the audit chain does not show)."""
        with transaction.atomic(using=router.db_for_write(self.model)):
            return super().user_change_password(request, id, form_url)


# django.contrib.auth registered these on the operators' site first; here they are audited too.
_AUDITED: tuple[tuple[type[Model], type[admin.ModelAdmin[Any]]], ...] = (
    (get_user_model(), AuditedUserAdmin),
    (Group, type(GroupAdmin.__name__, (StaffChangesAudited, GroupAdmin), {"__module__": __name__})),
)
for _model, _model_admin in _AUDITED:
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _model_admin)

IMPORT_FIELDS: tuple[str, ...] = (
    "file_name",
    "operator",
    "status",
    "reason",
    "skip_invalid",
    "total_lines",
    "created_at",
    "started_at",
    "finished_at",
    "created",
    "updated",
    "unchanged",
    "error_count",
    "aborted",
    "report",
)


@admin.register(MemberImport)
class MemberImportAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "file_name",
        "operator",
        "status",
        "created",
        "updated",
        "error_count",
        "report",
    ]
    list_filter = ["status"]
    fields = IMPORT_FIELDS
    readonly_fields = IMPORT_FIELDS

    @admin.display(description="informe")
    def report(self, job: MemberImport) -> str:
        return format_html(
            '<a href="{}">Ver informe</a>', reverse("admin:members_member_import_status", args=[job.pk])
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: MemberImport | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: MemberImport | None = None) -> bool:
        return False


# django-otp's own TOTPDevice admin shows each device's secret key and QR code to whoever may change
# devices. Here a device is only listed and can be deleted (a lost phone); `staff_create` enrols one.
if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)


# django-otp leaves its fields without a Spanish name («Created at», «Is this device ready for use?»).
DEVICE_FIELDS: tuple[str, ...] = ("operator", "device_name", "ready", "created", "last_used", "failures")


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(StaffChangesAudited):
    list_display = DEVICE_FIELDS[:-1]
    list_select_related = ["user"]
    fields = DEVICE_FIELDS
    readonly_fields = DEVICE_FIELDS

    operator = shown_as("user", "operador")
    device_name = shown_as("name", "nombre")
    ready = yes_no_shown_as("confirmed", "confirmado")
    created = shown_as("created_at", "creado")
    last_used = shown_as("last_used_at", "último uso")
    failures = shown_as("throttling_failure_count", "códigos errados seguidos")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TOTPDevice | None = None) -> bool:
        return False


# django-tasks-db's results (superusers only): its model and fields are named in Spanish by the
# project's catalogue (locale/); these are the admin's own columns, which it names in English.
if admin.site.is_registered(DBTaskResult):
    admin.site.unregister(DBTaskResult)


@admin.register(DBTaskResult)
class TaskResultAdmin(DBTaskResultAdmin):
    list_display = (
        "task_id",
        "task",
        "status",
        "enqueued_at",
        "started_at",
        "finished_at",
        "priority",
        "queue_name",
    )
    list_filter = (
        "status",
        ("priority", filter_titled("prioridad", admin.AllValuesFieldListFilter)),
        ("queue_name", filter_titled("cola", admin.AllValuesFieldListFilter)),
    )  # type: ignore[assignment]  # the library's is a tuple of names

    task_id = shown_as("id", "ID")

    @admin.display(description="tarea", ordering="task_path")
    def task(self, result: DBTaskResult) -> str:
        """The task's name from its path: django-tasks-db's task_name imports the task, and fails on a
        backend that cannot run it later (the demo's immediate backend)."""
        return result.task_path.rsplit(".", 1)[-1]

    def get_readonly_fields(self, request: HttpRequest, obj: DBTaskResult | None = None) -> list[str]:
        fields = super().get_readonly_fields(request, obj)
        return ["task_id" if name == "id" else name for name in fields]

    @admin.display(description="traza del error")
    def formatted_traceback(self, obj: DBTaskResult) -> str:
        return super().formatted_traceback(obj)

    @admin.display(description="no antes de")
    def display_run_after(self, obj: DBTaskResult) -> Any:
        return super().display_run_after(obj)
