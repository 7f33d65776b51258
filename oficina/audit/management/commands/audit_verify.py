from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from oficina.audit.models import Event
from oficina.audit.services import chain_verify


class Command(BaseCommand):
    help = "Verifica la cadena de hashes de los eventos de seguridad (detecta ediciones y borrados)."

    def handle(self, *args: Any, **options: Any) -> None:
        breaks = list(chain_verify())
        for item in breaks:
            self.stdout.write(f"Evento {item.event_id}: {item.problem}")
        total = Event.objects.count()
        if breaks:
            raise CommandError(
                f"La cadena de auditoría NO es íntegra: {len(breaks)} problemas en {total} eventos."
            )
        self.stdout.write(self.style.SUCCESS(f"Cadena de auditoría íntegra: {total} eventos verificados."))
