"""The delivery worker: runs the Django Tasks database worker, the outbox sweep and the audit chain's
sealer in one loop, and survives a database restart (it waits and reconnects instead of exiting).

It drives django-tasks-db's Worker itself rather than calling the db_worker command: that command
installs its own SIGTERM handler, which could swallow a stop signal that arrives mid-task and leave
this loop running. Here one handler stops both: the task in hand finishes, then the process exits."""

from __future__ import annotations

import logging
import signal
import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand
from django.db import close_old_connections
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Worker

from oficina.audit.services import audit_seal
from oficina.lib.db import DATABASE_DOWN, database_outage_pause
from oficina.notify.outbox import outbox_stop, outbox_sweep

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Entrega los mensajes de la bandeja de salida (SMS y correo) con reintentos."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--interval", type=float, default=1.0, help="Segundos entre rondas sin trabajo.")
        parser.add_argument("--sweep-every", type=float, default=15.0, help="Segundos entre barridos.")
        parser.add_argument("--max-seconds", type=float, default=0, help="Termina tras N segundos (pruebas).")

    def handle(
        self, *args: Any, interval: float, sweep_every: float, max_seconds: float, **options: Any
    ) -> None:
        running = True
        worker: Worker | None = None

        def stop(signum: int, frame: object) -> None:
            nonlocal running
            running = False
            outbox_stop()  # a batch of messages ends after the one in hand
            if worker is not None:
                worker.running = False  # finish the task in hand, take no other

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        started = time.monotonic()
        last_sweep = 0.0
        failures = 0
        while running and (not max_seconds or time.monotonic() - started < max_seconds):
            try:
                close_old_connections()
                audit_seal()  # every round: a request's events are chained within about a second
                if time.monotonic() - last_sweep >= sweep_every:
                    outbox_sweep()
                    last_sweep = time.monotonic()
                worker = Worker(
                    queue_names=["outbox", "default"],
                    interval=0,
                    batch=True,  # everything ready now, then back here
                    backend_name="default",
                    startup_delay=False,
                    max_tasks=None,
                    worker_id=get_random_string(32),
                    excluded_queue_names=[],
                )
                worker.run()
                failures = 0
            except DATABASE_DOWN as exc:
                failures += 1
                time.sleep(database_outage_pause(exc, failures=failures, logger=logger))
                continue
            time.sleep(interval)
