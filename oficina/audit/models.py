from __future__ import annotations

from django.db import models


class Event(models.Model):
    """An append-only security event. Never holds a PIN, code, keypad token or session id."""

    created_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=40, db_index=True)
    member_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # A keyed hash of the cédula: links events of one person without storing the number in the log.
    document_hmac = models.CharField(max_length=64, blank=True, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "evento de seguridad"
        verbose_name_plural = "eventos de seguridad"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.kind}"
