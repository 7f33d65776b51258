"""Seals the pending audit events (chains them in order). Once, or every N seconds with --loop for a
deployment that runs no outbox_worker (which seals every round) and for benchmarks."""

from __future__ import annotations

import logging
import signal
import threading
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from oficina.audit.services import audit_seal
from oficina.lib.commands import seconds
from oficina.lib.db import DATABASE_DOWN, database_outage_pause

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Sella (encadena) los eventos de seguridad pendientes; con --loop, cada N segundos."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--loop",
            type=seconds,
            default=0,
            metavar="SECONDS",
            help="Sigue sellando cada N segundos hasta recibir SIGTERM o SIGINT.",
        )

    def handle(self, *args: Any, loop: float, **options: Any) -> None:
        if loop <= 0:
            self.stdout.write(f"Eventos sellados: {audit_seal()}.")
            return
        stop = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            stop.set()  # the batch in hand commits; no other starts

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        failures = 0
        try:
            while not stop.is_set():
                try:
                    close_old_connections()
                    sealed = audit_seal()
                    failures = 0
                except DATABASE_DOWN as exc:  # the database restarts: wait, reconnect
                    failures += 1
                    stop.wait(database_outage_pause(exc, failures=failures, logger=logger))
                    continue
                if sealed:
                    self.stdout.write(f"Eventos sellados: {sealed}.")
                stop.wait(loop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("Sellado detenido.")
