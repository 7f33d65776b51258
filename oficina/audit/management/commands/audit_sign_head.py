from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from oficina.audit.services import chain_verify, head_sign_again

ACTOR = "manage.py audit_sign_head"


class Command(BaseCommand):
    help = (
        "Firma de nuevo la cabeza de la cadena de auditoría cuando su firma es lo único que falla (p. ej. "
        "un worker anterior selló durante la actualización). Se niega si la cadena tiene otro problema."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--motivo", required=True, help="Por qué se firma de nuevo (queda en el registro)."
        )

    def handle(self, *args: Any, motivo: str, **options: Any) -> None:
        reason = " ".join(motivo.split())
        if len(reason) < 10:
            raise CommandError(
                "Escribe el motivo (al menos 10 caracteres): queda en el registro de auditoría."
            )
        if not any(item.kind == "head_signature" for item in chain_verify()):
            self.stdout.write("La firma de la cabeza de la cadena es válida: no hay nada que firmar.")
            return
        refused = head_sign_again(actor=ACTOR, reason=reason)
        if refused:
            for item in refused:
                where = f"Evento {item.event_id}" if item.event_id else "Cabeza de la cadena"
                self.stdout.write(f"{where}: {item.problem}")
            raise CommandError(
                "No se firmó: la cadena tiene otros problemas además de la firma de su cabeza. Trátalo como "
                "un incidente."
            )
        self.stdout.write(self.style.SUCCESS("Cabeza de la cadena firmada de nuevo; quedó registrado."))
