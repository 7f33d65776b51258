"""Temporary codes, so an operator can tell a member whether a code was asked for and used.
Never the code's hash nor the flow it is bound to."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from oficina.backoffice.labels import choice_shown_as, filter_titled, shown_as
from oficina.signin.models import TemporaryCode

CODE_FIELDS = ("code_member", "code_channel", "created", "expires", "tries", "consumed", "superseded")


@admin.register(TemporaryCode)
class TemporaryCodeAdmin(admin.ModelAdmin):
    list_display = CODE_FIELDS
    list_filter = [
        ("channel", filter_titled("canal", admin.ChoicesFieldListFilter)),  # the field has no Spanish name
        ("created_at", filter_titled("creada", admin.DateFieldListFilter)),
    ]
    list_select_related = ["member"]
    search_fields = ["=member__document"]
    search_help_text = "Busca por cédula exacta."
    fields = CODE_FIELDS
    readonly_fields = CODE_FIELDS
    show_full_result_count = False

    code_member = shown_as("member", "asociado")
    created = shown_as("created_at", "creada")
    code_channel = choice_shown_as("channel", "canal")
    expires = shown_as("expires_at", "vence")
    tries = shown_as("attempts", "intentos")
    consumed = shown_as("consumed_at", "usada")
    superseded = shown_as("superseded_at", "reemplazada por otra")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TemporaryCode | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: TemporaryCode | None = None) -> bool:
        return False
