from __future__ import annotations

from django.db import models

from oficina.members.models import Member


class PolicyVersion(models.Model):
    """A published version of the personal-data treatment policy. Published text never changes."""

    version = models.CharField(max_length=20, unique=True)
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64)
    published_at = models.DateTimeField()

    class Meta:
        verbose_name = "versión de la política"
        verbose_name_plural = "versiones de la política"
        ordering = ["-published_at", "-id"]
        get_latest_by = ["published_at", "id"]

    def __str__(self) -> str:
        return f"Política {self.version}"


class Consent(models.Model):
    """Proof that a member authorised the treatment of their data (Ley 1581 de 2012, art. 9)."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="consents")
    policy = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="consents")
    text_sha256 = models.CharField(max_length=64)
    accepted_at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)

    class Meta:
        verbose_name = "autorización"
        verbose_name_plural = "autorizaciones"
        ordering = ["-accepted_at", "-id"]

    def __str__(self) -> str:
        return f"Autorización {self.pk} ({self.policy.version})"
