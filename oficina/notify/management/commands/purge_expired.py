"""Retention: deletes what the portal no longer needs (Ley 1581: data kept only as long as needed).

Kept: members, consents and the audit chain (evidence). Deleted after their retention period:
temporary codes and contact-confirmation codes (with the contact they would have saved),
delivered/failed/expired outbox rows (they hold phone numbers and e-mail addresses),
finished background task results, expired sessions, and the file of a registry import no worker
imported within RETENTION_IMPORT_FILE_HOURS (the import ends «Falló», with its reason, audited).
Run daily (cron or a systemd timer).
"""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone

from oficina.backoffice.imports import member_imports_stale, member_imports_stale_expire
from oficina.notify.models import OutboxMessage
from oficina.office.models import ContactCode
from oficina.signin.models import TemporaryCode, UnknownAttempt


class Command(BaseCommand):
    help = "Borra los datos vencidos según los plazos de retención (claves temporales, mensajes, sesiones)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Solo cuenta lo que se borraría.")

    def handle(self, *args: Any, dry_run: bool, **options: Any) -> None:
        now = timezone.now()
        codes = TemporaryCode.objects.filter(
            created_at__lt=now - timedelta(days=settings.RETENTION_CODES_DAYS)
        )
        contact_codes = ContactCode.objects.filter(
            created_at__lt=now - timedelta(days=settings.RETENTION_CODES_DAYS)
        )
        messages = OutboxMessage.objects.filter(
            status__in=OutboxMessage.FINAL,
            created_at__lt=now - timedelta(days=settings.RETENTION_OUTBOX_DAYS),
        )
        unknown = UnknownAttempt.objects.filter(
            updated_at__lt=now - timedelta(days=settings.RETENTION_CODES_DAYS)
        )
        counts = {
            "claves temporales": codes.count(),
            "códigos de confirmación de contacto": contact_codes.count(),
            "mensajes": messages.count(),
            "contadores de cédulas no habilitadas": unknown.count(),
            # An estimate for --dry-run: a running import whose process still lives is left alone.
            "archivos de importaciones vencidas sin importar": member_imports_stale(now=now).count(),
        }
        # What clearsessions and prune_db_task_results below delete, counted here too so that --dry-run
        # shows everything a run deletes (it named four kinds of six). Sessions in Redis expire there.
        if settings.SESSION_STORE == "db":
            from django.contrib.sessions.models import Session

            counts["sesiones vencidas"] = Session.objects.filter(expire_date__lt=now).count()
        tasks_in_database = str(settings.TASKS["default"]["BACKEND"]).startswith("django_tasks_db")
        if tasks_in_database:
            from django_tasks_db.models import DBTaskResult

            counts["resultados de tareas terminadas"] = (
                DBTaskResult.objects.finished()
                .filter(finished_at__lte=now - timedelta(days=settings.RETENTION_TASKS_DAYS))
                .count()
            )
        if not dry_run:
            counts["archivos de importaciones vencidas sin importar"] = member_imports_stale_expire(now=now)
            codes.delete()
            contact_codes.delete()
            messages.delete()
            unknown.delete()
            call_command("clearsessions")
            if tasks_in_database:
                call_command(
                    "prune_db_task_results",
                    "--queue-name",
                    "*",
                    "--min-age-days",
                    str(settings.RETENTION_TASKS_DAYS),
                    verbosity=0,
                )
        verb = "Se borrarían" if dry_run else "Borrados"
        self.stdout.write(f"{verb}: " + ", ".join(f"{n} {what}" for what, n in counts.items()) + ".")
