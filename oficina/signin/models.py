from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone

from oficina.members.models import Member


class SingleUseCodeQuerySet(models.QuerySet[Any]):
    """The rules every single-use code follows, each one statement: the temporary code and the
    office's contact code, filtered first by their own member and flow."""

    def live(self, now: datetime) -> SingleUseCodeQuerySet:
        return self.filter(consumed_at__isnull=True, superseded_at__isnull=True, expires_at__gt=now)

    def try_claimed(self, pk: int, now: datetime) -> bool:
        """One try on the code, counted before its hash is checked: of any number of parallel
        submissions, CODE_MAX_ATTEMPTS get a check in all."""
        claimed = self.live(now).filter(pk=pk, attempts__lt=settings.CODE_MAX_ATTEMPTS)
        return claimed.update(attempts=F("attempts") + 1) == 1

    def tries_spent(self, pk: int) -> bool:
        return self.filter(pk=pk, attempts__gte=settings.CODE_MAX_ATTEMPTS).exists()

    def consumed(self, pk: int) -> bool:
        """Single use: of any number of parallel right answers, one UPDATE wins."""
        unused = self.filter(pk=pk, consumed_at__isnull=True, superseded_at__isnull=True)
        return unused.update(consumed_at=timezone.now()) == 1

    def superseded(self, now: datetime) -> int:
        """Ends every code not yet used or replaced (a newer one is on its way, or the flow was left)."""
        return self.filter(consumed_at__isnull=True, superseded_at__isnull=True).update(superseded_at=now)


class SingleUseCode(models.Model):
    """A code sent by SMS or e-mail to prove a channel: only its hash is kept, it is bound to the browser
    session that asked for it (`flow_id`, the value lives only in that session), it expires, and it is
    single use, its tries counted in the database (each claimed by one conditional UPDATE)."""

    class Channel(models.TextChoices):
        SMS = "sms", "SMS"
        EMAIL = "email", "Correo electrónico"

    code_hash = models.CharField(max_length=256)
    channel = models.CharField(max_length=5, choices=Channel.choices)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    consumed_at = models.DateTimeField(null=True, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    objects = SingleUseCodeQuerySet.as_manager()

    class Meta:
        abstract = True


class TemporaryCode(SingleUseCode):
    """A "clave temporal" sent by SMS or e-mail. Only its hash is kept; it is single use."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="temporary_codes")
    flow_id = models.CharField(max_length=64, db_index=True)

    class Meta:
        verbose_name = "clave temporal"
        verbose_name_plural = "claves temporales"
        indexes = [models.Index(fields=["member", "created_at"])]

    def __str__(self) -> str:
        return f"Clave temporal {self.pk} ({self.get_channel_display()})"


class UnknownAttempt(models.Model):
    """PIN attempts that cannot be counted on a member (unknown or disabled cédula, no PIN yet, or an
    access already locked), keyed by the cédula's keyed hash. Counting them costs the same one write
    a member's attempt costs, so the time of a failure does not tell whose cédula it was."""

    document_hmac = models.CharField(max_length=64, unique=True)
    failed = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "intento con cédula no habilitada"
        verbose_name_plural = "intentos con cédulas no habilitadas"

    def __str__(self) -> str:
        return f"{self.document_hmac[:12]}… ({self.failed})"
