"""The outbox for operators: what was sent, what failed and why; never a message's body or subject
(a temporary code may be in it) and only the masked destination."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from oficina.backoffice.labels import shown_as
from oficina.backoffice.services import outbox_message_retry
from oficina.lib.masking import mask_email, mask_mobile
from oficina.notify.models import KIND_NAMES, OutboxMessage
from oficina.notify.outbox import CODE_KINDS

RETRY_AT_ONCE = 500  # «Reintentar» per request: each is a transaction, and the request must end in time

OUTBOX_FIELDS: tuple[str, ...] = (
    "kind_name",
    "channel",
    "masked_destination",
    "message_member",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "next_attempt_at",
    "expires_at",
    "sent_at",
)


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    list_display = [
        "kind_name",
        "channel",
        "masked_destination",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "sent_at",
    ]
    list_filter = ["status", "channel"]
    ordering = ["-created_at", "-id"]
    fields = OUTBOX_FIELDS
    readonly_fields = OUTBOX_FIELDS
    actions = ["retry_selected"]
    show_full_result_count = False

    message_member = shown_as("member", "asociado")

    @admin.display(description="tipo", ordering="kind")
    def kind_name(self, message: OutboxMessage) -> str:
        return KIND_NAMES.get(message.kind, message.kind)

    @admin.display(description="destino")
    def masked_destination(self, message: OutboxMessage) -> str:
        return (
            mask_mobile(message.to)
            if message.channel == OutboxMessage.Channel.SMS
            else mask_email(message.to)
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxMessage]:
        # The body, HTML and subject are never even loaded for these pages.
        return super().get_queryset(request).defer("body", "html", "subject").select_related("member")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OutboxMessage | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: OutboxMessage | None = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("notify.change_outboxmessage")

    @admin.action(description="Reintentar los mensajes fallidos seleccionados", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        """At most RETRY_AT_ONCE, the oldest first: after a gateway's outage, «Seleccionar todos» on
        thousands of failed notices ran one transaction each in one request, past gunicorn's 30 s, and
        the operator got an error page halfway (those retried stood; review of the operators' side,
        2026-12-07). The rest are counted, for the action to be run again."""
        retried = 0
        chosen = queryset.count()  # before any retry (a list filtered on «Fallido» shrinks after)
        failed = queryset.filter(status=OutboxMessage.Status.FAILED)
        never = Q(kind__in=CODE_KINDS) | Q(body="")  # a code, a body erased: refused (and audited so)
        retryable = failed.exclude(never).count()
        # The notices first: the oldest could be codes, and the action run again would never get past
        # them. Then, in the room left, the codes, each refused and audited as before.
        batch = list(failed.exclude(never).order_by("id")[:RETRY_AT_ONCE])
        batch += list(failed.filter(never).order_by("id")[: RETRY_AT_ONCE - len(batch)])
        left = max(retryable - RETRY_AT_ONCE, 0)
        for message in batch:
            if outbox_message_retry(request=request, message=message):
                retried += 1
        skipped = chosen - retried - left  # not failed, a code or erased, or retried meanwhile by another
        if retried:
            self.message_user(request, f"Reintentamos {retried} mensaje(s).", messages.SUCCESS)
        if left:
            self.message_user(
                request,
                f"Quedan {left} mensaje(s) fallidos por reintentar: se reintentan {RETRY_AT_ONCE} a la vez, "
                "los más antiguos primero. Ejecuta la acción de nuevo para seguir.",
                messages.WARNING,
            )
        if skipped:
            self.message_user(
                request,
                f"{skipped} mensaje(s) no se pueden reintentar: solo los avisos fallidos; una clave "
                "temporal o un código no se reenvían (el asociado pide uno nuevo).",
                messages.WARNING,
            )
