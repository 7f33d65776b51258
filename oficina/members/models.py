from __future__ import annotations

import hashlib

from django.db import models
from django.utils.crypto import constant_time_compare


class Member(models.Model):
    """An asociado, as imported from the cooperative's core system, plus their sign-in credentials."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Activo"
        DISABLED = "disabled", "Deshabilitado"

    document = models.CharField("cédula", max_length=10, unique=True, help_text="Solo dígitos, normalizada.")
    name = models.CharField("nombre", max_length=150)
    mobile = models.CharField("celular", max_length=16, blank=True, help_text="E.164, p. ej. +573111234567")
    email = models.EmailField("correo", max_length=254, blank=True)
    status = models.CharField("estado", max_length=10, choices=Status.choices, default=Status.ACTIVE)

    pin_hash = models.CharField("clave (hash)", max_length=256, blank=True)
    pin_changed_at = models.DateTimeField(null=True, blank=True)
    security_image = models.CharField("imagen de seguridad", max_length=40, blank=True)
    security_phrase = models.CharField("frase de seguridad", max_length=60, blank=True)

    failed_pin_attempts = models.PositiveIntegerField(default=0)
    locked_at = models.DateTimeField("bloqueado desde", null=True, blank=True)
    # Set with locked_at when the member blocked their own access ("Bloquear mi acceso").
    self_blocked_at = models.DateTimeField("bloqueado por el asociado", null=True, blank=True)
    # The one live office session, as session_digest(its id): a new sign-in replaces it, and the older
    # browser is told why. A digest, not the id: whoever reads the database (a backup, a replica) must
    # not be able to take over a member's live session with what is stored here.
    session_digest = models.CharField(max_length=64, blank=True, editable=False)
    # The step-up (the PIN proven again in the office) this session may spend on one security change,
    # as session_digest(its random token); emptied by that change. In the database, not the session:
    # parallel requests of one session all read the session as it was, and each spent it again.
    stepup_digest = models.CharField(max_length=64, blank=True, editable=False)
    # How many revocations of the member's authorisation the data officer has granted (the ledger,
    # ConsentRevocation, is the record; this is its count on the member's own row). A sign-in writes
    # its session only if the count is still what its consent check read (signin/flows/login.py
    # ::member_sign_in): a grant committed in between changes this row, which the sign-in's UPDATE
    # re-reads even when it waited for the grant's lock (docs/security.md §2.12).
    revocations_granted = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    last_login_at = models.DateTimeField("último ingreso", null=True, blank=True)
    previous_login_at = models.DateTimeField("ingreso anterior", null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "asociado"
        verbose_name_plural = "asociados"
        constraints = [
            models.CheckConstraint(
                condition=~(models.Q(mobile="") & models.Q(email="")), name="member_has_a_channel"
            ),
        ]
        # No index on name: one for the back office's list order, and a trigram one for its search by
        # name, made the registry import of a million members 50 % slower, past issue 6's 60 s on a
        # busy host (docs/performance.md, "Queries outside the sign-in").

    def __str__(self) -> str:
        return f"{self.name} ({self.document[:-4]}****)" if len(self.document) > 4 else self.name

    @property
    def has_pin(self) -> bool:
        return bool(self.pin_hash)

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class PinHistory(models.Model):
    """Hashes of a member's recent PINs, so a new PIN cannot repeat one of the last three."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="pin_history")
    pin_hash = models.CharField(max_length=256)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "clave anterior"  # named in the permissions a superuser gives («pin history»)
        verbose_name_plural = "claves anteriores"

    def __str__(self) -> str:
        return f"Clave anterior de {self.member_id} ({self.created_at:%Y-%m-%d})"


def session_digest(session_key: str | None) -> str:
    """What Member.session_digest holds for a session id: its SHA-256. The id is 32 random characters
    (`secrets`), so no key or salt is needed to keep it from being guessed back, and none has to
    survive a SECRET_KEY rotation. An id that is not there (a session not saved) has no digest."""
    if not session_key:
        raise ValueError("a session without an id has no digest")
    return hashlib.sha256(session_key.encode()).hexdigest()


def session_is_current(member: Member, session_key: str | None) -> bool:
    """Whether `session_key` is the member's one live office session."""
    return bool(session_key and member.session_digest) and constant_time_compare(
        member.session_digest, session_digest(session_key)
    )
