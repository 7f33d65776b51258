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
        # The back office's ledger, newest first (that ordering, read backwards): a page without sorting
        # every consent (1.6 s at 1,200,000, spilling to disk; docs/performance.md).
        # And one version's consents, newest first (the ledger filtered by version, ConsentAdmin).
        indexes = [
            models.Index(fields=["accepted_at", "id"], name="consent_accepted_at_id"),
            models.Index(fields=["policy", "accepted_at", "id"], name="consent_policy_accepted_id"),
        ]

    def __str__(self) -> str:
        return f"Autorización {self.pk} ({self.policy.version})"


class DataRequest(models.Model):
    """A member's request about their personal data, filed in the office (Ley 1581 de 2012: art. 14
    consultas, answered within 10 business days; art. 15 reclamos, within 15). The cooperative's data
    officer answers it in the back office; the member sees the answer in the office."""

    class Kind(models.TextChoices):
        CONSULT = "consulta", "Conocer mis datos y el uso que se les da"
        PROOF = "prueba", "Recibir prueba de la autorización que di"
        UPDATE = "actualizar", "Actualizar o corregir mis datos"
        REVOKE = "revocar", "Revocar la autorización"
        DELETE = "suprimir", "Suprimir mis datos"

    class Status(models.TextChoices):
        RECEIVED = "recibida", "Recibida, en trámite"
        ANSWERED = "respondida", "Respondida"

    # Reclamos (art. 15): a correction, a revocation or a deletion; they need the facts described.
    CLAIMS = frozenset({Kind.UPDATE, Kind.REVOKE, Kind.DELETE})
    CONSULT_EXTENSION_DAYS = 5  # art. 14
    CLAIM_EXTENSION_DAYS = 8  # art. 15
    DETAIL_MAX = 1000  # what the member may write (the office page says so)
    ANSWER_MAX = 2000  # what the data officer may write (the back office form says so)

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="data_requests")
    kind = models.CharField("solicitud", max_length=12, choices=Kind.choices)
    detail = models.TextField("descripción del asociado", max_length=DETAIL_MAX, blank=True)
    received_at = models.DateTimeField("recibida")
    due_on = models.DateField("responder a más tardar")
    status = models.CharField("estado", max_length=12, choices=Status.choices, default=Status.RECEIVED)
    answer = models.TextField("respuesta", max_length=ANSWER_MAX, blank=True)
    answered_at = models.DateTimeField("respondida", null=True, blank=True)
    answered_by = models.CharField("respondida por", max_length=150, blank=True)
    # An extension of the term (art. 14: 5 more business days for a consulta; art. 15: 8 for a reclamo),
    # told to the member with its reasons before the first term ends; `due_on` then holds the new date.
    first_due_on = models.DateField("plazo inicial", null=True, blank=True)
    extension_reason = models.TextField("motivo de la prórroga", max_length=DETAIL_MAX, blank=True)
    extended_at = models.DateTimeField("prorrogada", null=True, blank=True)
    extended_by = models.CharField("prorrogada por", max_length=150, blank=True)

    class Meta:
        verbose_name = "solicitud sobre datos personales"
        verbose_name_plural = "solicitudes sobre datos personales"
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["status", "due_on"])]

    def __str__(self) -> str:
        return f"Solicitud n.º {self.pk} ({self.get_kind_display()})"


class ConsentRevocation(models.Model):
    """A revocation of the member's authorisation, granted by the data officer on a reclamo (Ley 1581
    de 2012, art. 8 e and art. 15): the consents given before it no longer count, and the office asks
    for a new «Permitir» at the next sign-in. Part of the ledger: never changed or deleted."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="consent_revocations")
    data_request = models.OneToOneField(DataRequest, on_delete=models.PROTECT, related_name="revocation")
    revoked_at = models.DateTimeField("revocada")
    revoked_by = models.CharField("concedida por", max_length=150)

    class Meta:
        verbose_name = "revocación de la autorización"
        verbose_name_plural = "revocaciones de la autorización"
        ordering = ["-revoked_at", "-id"]

    def __str__(self) -> str:
        return f"Revocación {self.pk} (solicitud n.º {self.data_request_id})"
