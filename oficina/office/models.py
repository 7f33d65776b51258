from __future__ import annotations

from django.db import models

from oficina.members.models import Member


class ContactCode(models.Model):
    """The code that proves a new mobile or e-mail before the office saves it. As a temporary code, only
    its hash is kept and it is single use; its tries are counted here, by one conditional UPDATE each, so
    parallel submissions cannot share a try (a count in the session could: each request read it before
    the others wrote it back). The pending contact waits here, not in the member's row."""

    class Channel(models.TextChoices):
        SMS = "sms", "SMS"
        EMAIL = "email", "Correo electrónico"

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="contact_codes")
    # Binds the code to the office session that asked for it (the value lives only in that session).
    flow_id = models.CharField(max_length=64)
    channel = models.CharField(max_length=5, choices=Channel.choices)
    mobile = models.CharField(max_length=16, blank=True)
    email = models.CharField(max_length=254, blank=True)
    code_hash = models.CharField(max_length=256)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    consumed_at = models.DateTimeField(null=True, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "código de confirmación de contacto"
        verbose_name_plural = "códigos de confirmación de contacto"
        indexes = [models.Index(fields=["member", "flow_id"])]

    def __str__(self) -> str:
        return f"Código de contacto {self.pk} ({self.get_channel_display()})"
