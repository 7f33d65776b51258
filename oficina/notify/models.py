from __future__ import annotations

from django.db import models

from oficina.members.models import Member

# What each kind of message is called for operators (the outbox list, a message's title).
KIND_NAMES = {
    "temporary_code": "Clave temporal",
    "pin_changed": "Aviso de cambio de clave",
    "access_locked": "Aviso de bloqueo",
    "access_self_blocked": "Aviso de «Bloquear mi acceso»",
    "security_change": "Aviso de cambio de seguridad",
    "signin_after_failures": "Aviso de ingreso tras intentos fallidos",
    "contact_verify": "Código para confirmar contacto",
    "data_request_answered": "Aviso de respuesta a una solicitud de datos",
    "data_request_extended": "Aviso de prórroga de una solicitud de datos",
    "operator_reset_help": "Instrucciones de clave temporal (operador)",
    "operator_contact_changed": "Aviso de cambio de contacto (operador)",
    "operator_unlocked": "Aviso de desbloqueo (operador)",
    "import_contact_changed": "Aviso de cambio de contacto (importación)",
}


class OutboxMessage(models.Model):
    """A message to a member, written in the same transaction as the change that calls for it and
    delivered in the background with retries. The body is erased once the message reaches a final
    state: a temporary code must not outlive its delivery in clear text."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pendiente"
        SENDING = "sending", "Enviando"
        RETRYING = "retrying", "Reintentando"
        SENT = "sent", "Enviado"
        FAILED = "failed", "Fallido"
        EXPIRED = "expired", "Vencido sin enviar"

    class Channel(models.TextChoices):
        SMS = "sms", "SMS"
        EMAIL = "email", "Correo electrónico"

    FINAL = (Status.SENT, Status.FAILED, Status.EXPIRED)

    member = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField("tipo", max_length=40)
    channel = models.CharField("canal", max_length=5, choices=Channel.choices)
    to = models.CharField("destino", max_length=254)
    subject = models.CharField("asunto", max_length=200, blank=True)
    body = models.TextField(blank=True)
    html = models.TextField(blank=True)
    status = models.CharField("estado", max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField("intentos", default=0)
    created_at = models.DateTimeField("creado", db_index=True)
    next_attempt_at = models.DateTimeField("próximo intento", null=True, blank=True, db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField("vence", null=True, blank=True)
    sent_at = models.DateTimeField("enviado", null=True, blank=True)
    last_error = models.CharField("último error", max_length=300, blank=True)

    class Meta:
        verbose_name = "mensaje"
        verbose_name_plural = "mensajes (bandeja de salida)"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} por {self.get_channel_display()} ({self.get_status_display()})"

    def get_kind_display(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind)
