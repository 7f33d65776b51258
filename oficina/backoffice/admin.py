"""The import history, and the operators' TOTP devices shown without their secrets."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django_otp.plugins.otp_totp.models import TOTPDevice

from oficina.backoffice.models import MemberImport

IMPORT_FIELDS: tuple[str, ...] = (
    "file_name",
    "operator",
    "status",
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


DEVICE_FIELDS: tuple[str, ...] = (
    "user",
    "name",
    "confirmed",
    "created_at",
    "last_used_at",
    "throttling_failure_count",
)


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_select_related = ["user"]
    fields = DEVICE_FIELDS
    readonly_fields = DEVICE_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TOTPDevice | None = None) -> bool:
        return False
