from __future__ import annotations

from django.db import models

from oficina.members.models import Member
from oficina.signin.models import SingleUseCode


class ContactCode(SingleUseCode):
    """The code that proves a new mobile or e-mail before the office saves it, with the rules of a
    temporary code (its tries counted here, by one conditional UPDATE each, so parallel submissions
    cannot share a try: a count in the session could, each request reading it before the others wrote
    it back). The pending contact waits here, not in the member's row."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="contact_codes")
    flow_id = models.CharField(max_length=64)
    mobile = models.CharField(max_length=16, blank=True)
    email = models.CharField(max_length=254, blank=True)
    # The contact the change was asked from: the pair above is saved only while it is still the member's,
    # so that a change made meanwhile (an operator's at the counter) is not undone by one typed before it.
    # (Review, 2026-12-06)
    previous_mobile = models.CharField(max_length=16, blank=True)
    previous_email = models.CharField(max_length=254, blank=True)

    class Meta:
        verbose_name = "código de confirmación de contacto"
        verbose_name_plural = "códigos de confirmación de contacto"
        indexes = [models.Index(fields=["member", "flow_id"])]

    def __str__(self) -> str:
        return f"Código de contacto {self.pk} ({self.get_channel_display()})"
