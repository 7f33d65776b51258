from __future__ import annotations

from django.conf import settings
from django.db import models


class MemberImport(models.Model):
    """One CSV import of the member registry started from the operators' site.

    The file waits here until the background task imports it (the request does not: a big file would
    outlive the web worker's timeout); its content is erased as soon as the import ends, and only
    the report (counts and per-line errors, which never echo a row) is kept."""

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
        return (
            f"Creados: {self.created}, actualizados: {self.updated}, "
            f"sin cambios: {self.unchanged}, con errores: {self.error_count}"
        )
