from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from oficina.audit.models import ChainHead, Event
from oficina.audit.offline import csv_check, report
from oficina.audit.services import chain_counts, chain_verify, content_signed


class Command(BaseCommand):
    help = (
        "Verifica la cadena de hashes de los eventos de seguridad (detecta ediciones y borrados); con "
        "--csv, un archivo exportado (sus hashes, sus firmas y sus sellos frente a la cadena); con --seq, "
        "muestra el hash de un evento sellado."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--csv", metavar="ARCHIVO", help="Verifica un CSV de eventos exportado.")
        parser.add_argument(
            "--seq", type=int, metavar="N", help="Muestra el hash del evento sellado n.º N, para compararlo."
        )

    def handle(self, *args: Any, csv: str | None, seq: int | None, **options: Any) -> None:
        if csv:
            self._check_file(csv)
        elif seq is not None:
            digest = Event.objects.filter(seq=seq).values_list("hash", flat=True).first()
            if digest is None:
                raise CommandError(f"No hay un evento sellado con el n.º {seq}.")
            self.stdout.write(f"Evento sellado n.º {seq}: hash {digest}")
        else:
            self._check_database()

    def _check_file(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8", newline="") as handle:
                # Sealed events before this `seq` were appended before signatures existed.
                since = ChainHead.objects.values_list("signed_from_seq", flat=True).first() or 0
                result = csv_check(handle, signed=content_signed, signed_from_seq=since, chain=_chain_hashes)
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"No se pudo leer {path}: {exc}") from exc
        self.stdout.write(report(result))
        if not result.sound:
            raise CommandError("El archivo NO es íntegro.")

    def _check_database(self) -> None:
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


def _chain_hashes(seqs: list[int]) -> dict[int, str]:
    """The hash of each of these sealed events, as the database holds it (`seq` is unique)."""
    sealed = Event.objects.filter(seq__in=seqs).values_list("seq", "hash")
    return {seq: digest for seq, digest in sealed if seq is not None and digest is not None}


def _s(count: int) -> str:
    return "" if count == 1 else "s"
