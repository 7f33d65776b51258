"""The PostgreSQL privileges of the evidence, the audit trail, the consent ledger and the members' data
requests (docs/operations.md, "Database roles"): prints the GRANT and REVOKE statements for the
application's role, or, with --check, says what the role this portal connects with can do to them beyond
appending, reading and sealing events, adding and reading the ledger, and filing, answering and extending
data requests, and whether their triggers are there and firing."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from oficina.audit.privileges import audit_powers, grants_sql


class Command(BaseCommand):
    help = (
        "Imprime el SQL (GRANT/REVOKE) que deja al rol de la aplicación agregar, leer y sellar eventos de "
        "auditoría, agregar y leer el registro de autorizaciones, y radicar, responder y prorrogar "
        "solicitudes sobre datos personales, nunca editarlos ni borrarlos; con --check, revisa el rol con "
        "el que se conecta el portal y los disparadores que los protegen."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--app-role", metavar="ROL", help="Rol con el que se conectan la web y el worker."
        )
        parser.add_argument("--owner-role", metavar="ROL", help="Rol dueño de las tablas (corre migrate).")
        parser.add_argument("--schema", default="public", help="Esquema de las tablas (public).")
        parser.add_argument(
            "--check", action="store_true", help="Revisa el rol conectado en vez de imprimir el SQL."
        )

    def handle(
        self,
        *args: Any,
        app_role: str | None,
        owner_role: str | None,
        schema: str,
        check: bool,
        **options: Any,
    ) -> None:
        if check:
            self._check()
            return
        if not app_role or not owner_role:
            raise CommandError("Indica --app-role y --owner-role (o --check).")
        if app_role == owner_role:
            raise CommandError(
                "El rol de la aplicación no puede ser el dueño de las tablas: el dueño puede todo."
            )
        self.stdout.write(grants_sql(app_role=app_role, owner_role=owner_role, schema=schema), ending="")

    def _check(self) -> None:
        powers = audit_powers(connection)
        if powers is None:
            self.stdout.write("La base de datos no es PostgreSQL: no hay roles ni permisos que revisar.")
            return
        for line in powers.findings:
            self.stdout.write(line)
        if powers.too_powerful:
            raise CommandError(
                f"El rol «{powers.role}» puede editar o borrar la auditoría, el registro de autorizaciones o "
                "las solicitudes sobre datos personales: conecta la web y el worker con un rol que tenga "
                "solo los permisos que imprime `audit_db_grants` (docs/operations.md, «Database roles»)."
            )
        if powers.triggers_off:
            raise CommandError(
                "Faltan o están desactivados los disparadores que protegen la auditoría, el registro de "
                "autorizaciones o las solicitudes sobre datos personales: averigua quién los quitó y "
                "restitúyelos como el rol dueño (docs/operations.md, «Database roles»)."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"El rol «{powers.role}» solo agrega, lee y sella eventos de auditoría, solo agrega y lee el "
                "registro de autorizaciones, y solo radica, lee, responde una vez y prorroga una vez las "
                "solicitudes sobre datos personales; los disparadores están activos."
            )
        )
