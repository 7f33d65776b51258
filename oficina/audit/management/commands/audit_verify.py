from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from oficina.audit.services import chain_counts, chain_verify


class Command(BaseCommand):
    help = "Verifica la cadena de hashes de los eventos de seguridad (detecta ediciones y borrados)."

    def handle(self, *args: Any, **options: Any) -> None:
        breaks = list(chain_verify())
        for item in breaks:
            where = f"Evento {item.event_id}" if item.event_id else "Cabeza de la cadena"
            self.stdout.write(f"{where}: {item.problem}")
        sealed, pending = chain_counts()
        counts = (
            f"{sealed} evento{_s(sealed)} sellado{_s(sealed)}, {pending} pendiente{_s(pending)} de sellar"
        )
        if breaks:
            raise CommandError(
                f"La cadena de auditoría NO es íntegra: {len(breaks)} problema{_s(len(breaks))} ({counts})."
            )
        self.stdout.write(self.style.SUCCESS(f"Cadena de auditoría íntegra: {counts}."))


def _s(count: int) -> str:
    return "" if count == 1 else "s"
