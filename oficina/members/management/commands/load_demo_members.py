"""Loads the demo members listed in the README (demo/asociados.csv), with credentials for two of them."""

from __future__ import annotations

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
from oficina.members.models import Member, PinHistory
from oficina.signin.pin import secret_hash

DEMO_FILE = Path(settings.BASE_DIR) / "demo" / "asociados.csv"

# Members who have already completed "Olvidé mi clave" once: (cédula, PIN, image, phrase).
RETURNING = [
    ("1020304050", "480263", "buho", "La peor experiencia es la mejor maestra"),
    ("43210987", "592817", "girasol", "Mi huerta da buenos frutos"),
]


class Command(BaseCommand):
    help = "Carga los asociados de demostración (solo para DEBUG / pruebas)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--force", action="store_true", help="Permite cargarlos aunque DEBUG esté apagado."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError("Los asociados de demostración solo se cargan con DEBUG=1 (o con --force).")
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
