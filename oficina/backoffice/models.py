from __future__ import annotations

from django.conf import settings
from django.db import models


class MemberImport(models.Model):
    """One CSV import of the member registry started from the operators' site.

    The file waits here until the background task imports it (the request does not: a big file would
    outlive the web worker's timeout); its content is erased as soon as the import ends, and only
    the report (counts and per-line errors, which never echo a row) is kept. A file no task imported
    within RETENTION_IMPORT_FILE_HOURS is erased too, by `purge_expired` (Ley 1581: personal data
    kept only as long as needed), and the import ends «Falló» with its `reason`."""

    class Status(models.TextChoices):
        QUEUED = "queued", "En cola"
        RUNNING = "running", "Importando"
        DONE = "done", "Terminada"
        FAILED = "failed", "Falló"

    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="operador",
    )
    file_name = models.CharField("archivo", max_length=200)
    content = models.BinaryField(editable=False)
    total_lines = models.PositiveIntegerField("líneas del archivo", default=0)
    skip_invalid = models.BooleanField("omitir filas inválidas", default=False)
    status = models.CharField("estado", max_length=10, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField("solicitada", auto_now_add=True)
    started_at = models.DateTimeField("iniciada", null=True, blank=True)
    finished_at = models.DateTimeField("terminada", null=True, blank=True)
    created = models.PositiveIntegerField("creados", default=0)
    updated = models.PositiveIntegerField("actualizados", default=0)
    unchanged = models.PositiveIntegerField("sin cambios", default=0)
    error_count = models.PositiveIntegerField("con errores", default=0)
    errors = models.JSONField("errores", default=list, blank=True)
    aborted = models.BooleanField("archivo rechazado", default=False)
    # Why an import ended without running, for the operator: its file waited past
    # RETENTION_IMPORT_FILE_HOURS and was erased (imports.py::member_imports_stale_expire).
    reason = models.CharField("motivo", max_length=400, blank=True, default="")

    class Meta:
        verbose_name = "importación de asociados"
        verbose_name_plural = "importaciones de asociados"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Importación {self.pk} ({self.file_name})"

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}

    @property
    def imported_nothing(self) -> bool:
        return (
            self.status == self.Status.FAILED
            or self.aborted
            or (self.error_count > 0 and not self.skip_invalid)
        )

    @property
    def summary(self) -> str:
        from oficina.members.importer import import_summary

        return import_summary(self.created, self.updated, self.unchanged, self.error_count)


class OperatorAccessWithdrawn(models.Model):
    """When an operator was last saved without access (inactive, or no longer staff).

    Every session signed in before it stays ended, even once the access is given back: Django stops
    reading such a session as signed in but keeps it, and the middleware can end it only at a request.
    Without this, a session (or a copy of its id) that made no request between the withdrawal and its
    undoing came back signed in and verified (backoffice/middleware.py)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        verbose_name = "acceso de operador retirado"
        verbose_name_plural = "accesos de operador retirados"

    def __str__(self) -> str:
        return f"Acceso retirado a {self.user_id} ({self.at:%Y-%m-%d %H:%M})"
