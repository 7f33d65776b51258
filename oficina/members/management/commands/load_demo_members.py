"""Loads the demo members listed in the README (demo/asociados.csv), with credentials for two of them."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from oficina.consent.models import Consent
from oficina.consent.services import policy_current_or_default, policy_ensure_published
from oficina.lib.national_id import normalise_document
from oficina.members.models import Member, PinHistory
from oficina.signin.pin import secret_hash

DEMO_FILE = Path(settings.BASE_DIR) / "demo" / "asociados.csv"

# Members who have already completed "Olvidé mi clave" once: (cédula, PIN, image, phrase).
RETURNING = [
    ("1020304050", "480263", "buho", "La peor experiencia es la mejor maestra"),
    ("43210987", "592817", "girasol", "Mi huerta da buenos frutos"),
]


def _demo_documents() -> list[str]:
    with DEMO_FILE.open(encoding="utf-8-sig", newline="") as demo:
        return [normalise_document(row["documento"]) for row in csv.DictReader(demo)]


class Command(BaseCommand):
    help = "Carga los asociados de demostración (solo para DEBUG / pruebas)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--force", action="store_true", help="Permite cargarlos aunque DEBUG esté apagado."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError("Los asociados de demostración solo se cargan con DEBUG=1 (o con --force).")
        if not settings.DEBUG:
            # With --force, on what may be a real registry: a member already there under a demo cédula
            # is a real person, whom the demo gave its name, its contacts and (without a PIN yet) the
            # PIN printed in the README (review of the operators' side, 2026-12-06).
            taken = sorted(
                Member.objects.filter(document__in=_demo_documents()).values_list("document", flat=True)
            )
            if taken:
                raise CommandError(
                    f"Ya hay asociados con cédulas de la demostración ({', '.join(taken)}): la demostración "
                    "no se carga sobre un registro real. No se cargó nada."
                )
        call_command("import_members", str(DEMO_FILE), stdout=self.stdout, stderr=self.stderr)
        policy = policy_ensure_published(policy_current_or_default())
        with transaction.atomic():
            for document, pin, image, phrase in RETURNING:
                member = Member.objects.get(document=document)
                if member.pin_hash:
                    continue  # keep whatever the demo user changed
                member.pin_hash = secret_hash(pin)
                member.pin_changed_at = timezone.now()
                member.security_image = image
                member.security_phrase = phrase
                member.last_login_at = timezone.now() - timedelta(days=2, hours=3)
                member.save()
                PinHistory.objects.create(member=member, pin_hash=member.pin_hash)
                Consent.objects.create(
                    member=member, policy=policy, text_sha256=policy.text_sha256, accepted_at=timezone.now()
                )
        self.stdout.write(self.style.SUCCESS("Asociados de demostración listos (ver README)."))
