"""Temporary codes, so an operator can tell a member whether a code was asked for and used.
Never the code's hash nor the flow it is bound to."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from oficina.signin.models import TemporaryCode

CODE_FIELDS = ("member", "channel", "created_at", "expires_at", "attempts", "consumed_at", "superseded_at")


@admin.register(TemporaryCode)
class TemporaryCodeAdmin(admin.ModelAdmin):
    list_display = [
        "member",
        "channel",
        "created_at",
        "expires_at",
        "attempts",
        "consumed_at",
        "superseded_at",
    ]
    list_filter = ["channel", "created_at"]
    list_select_related = ["member"]
    search_fields = ["=member__document"]
    search_help_text = "Busca por cédula exacta."
    fields = CODE_FIELDS
    readonly_fields = CODE_FIELDS
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TemporaryCode | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: TemporaryCode | None = None) -> bool:
        return False
