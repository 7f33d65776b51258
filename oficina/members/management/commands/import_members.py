from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from oficina.audit.services import event_record
from oficina.members.importer import members_import

# Who imported, in the audit events of the contacts an import changes: whoever runs the command.
ACTOR = "manage.py import_members"


class Command(BaseCommand):
    help = (
        "Importa o actualiza asociados desde un CSV UTF-8 con encabezado documento,nombre,celular,correo. "
        "Nunca modifica claves, imagen ni frase de seguridad."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", type=Path, help="Archivo CSV exportado del sistema central.")
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="Importa las filas válidas y omite las que tienen errores.",
        )

    def handle(self, *args: Any, path: Path, skip_invalid: bool, **options: Any) -> None:
        try:
            # surrogateescape keeps going past bytes that are not UTF-8, so the importer can name the line.
            csv_file = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")
        except FileNotFoundError as exc:
            raise CommandError(f"No existe el archivo {path}.") from exc
        except OSError as exc:
            raise CommandError(f"No se pudo abrir el archivo {path}: {exc.strerror}.") from exc
        with csv_file:
            report = members_import(lines=csv_file, actor=ACTOR, skip_invalid=skip_invalid)
        # As an upload in the back office records it (backoffice/imports.py): without it, members
        # created from a file left no trace in the audit chain unless an existing contact changed.
        event_record(
            "operator_import",
            operator=ACTOR,
            file=path.name[:200],
            imported=not report.aborted and (skip_invalid or not report.errors),
            **report.event_counts(),
            skip_invalid=skip_invalid,
        )

        for error in report.errors:
            self.stdout.write(str(error))
        self.stdout.write(report.summary)
        if report.aborted:
            self.stderr.write("No se importó nada: corrige el archivo y vuelve a intentarlo.")
            raise CommandError("La importación falló.")
        if report.errors and not skip_invalid:
            self.stderr.write("No se importó nada: corrige las líneas con error o usa --skip-invalid.")
            raise CommandError(f"La importación falló: {len(report.errors)} líneas con error.")
