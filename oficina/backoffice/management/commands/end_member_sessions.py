"""Ends every member's open office session at once, audited: for an incident (sessions or SECRET_KEY
thought stolen), from the server, when the back office itself is in doubt."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from oficina.backoffice.services import member_sessions_end
from oficina.members.models import Member

ACTOR = "manage.py end_member_sessions"  # who ended them, in the audit event


class Command(BaseCommand):
    help = "Cierra la sesión abierta de todos los asociados (no toca su acceso); queda en la auditoría."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--yes", action="store_true", help="confirma que se cierran todas")

    def handle(self, *args: Any, yes: bool = False, **options: Any) -> None:
        if not yes:
            raise CommandError("Cierra la sesión de TODOS los asociados: repite la orden con --yes.")
        ended = member_sessions_end(queryset=Member.objects.all(), operator=ACTOR)
        self.stdout.write(self.style.SUCCESS(f"Se cerraron {ended} sesión(es) abierta(s)."))
