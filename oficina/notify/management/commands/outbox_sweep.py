from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from oficina.lib.commands import seconds
from oficina.notify.outbox import outbox_sweep


class Command(BaseCommand):
    help = "Reencola los mensajes pendientes, los reintentos vencidos y los envíos interrumpidos."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--loop", type=seconds, default=0, help="Repite cada N segundos (0: una sola vez)."
        )

    def handle(self, *args: Any, loop: float, **options: Any) -> None:
        while True:
            count = outbox_sweep()
            if count or not loop:
                self.stdout.write(f"Mensajes reencolados: {count}")
            if not loop:
                return
            time.sleep(loop)
