"""The delivery worker: runs the Django Tasks database worker, the outbox sweep and the audit chain's
sealer in one loop, and survives a database restart (it waits and reconnects instead of exiting).

Registry imports uploaded in the back office run in a thread of their own, on their own queue
("imports"): an import is one task of tens of seconds, and while it runs, the main loop goes on
delivering temporary codes and notices (docs/security.md G21).

It drives django-tasks-db's Worker itself rather than calling the db_worker command: that command
installs its own SIGTERM handler, which could swallow a stop signal that arrives mid-task and leave
this loop running. Here one handler stops both loops: the task in hand (a message, or an import)
finishes, then the process exits."""

from __future__ import annotations

import logging
import signal
import threading
import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand
from django.db import close_old_connections, connections
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Worker

from oficina.audit.services import audit_seal
from oficina.backoffice.imports import member_imports_abandoned_close
from oficina.lib.commands import seconds
from oficina.lib.db import DATABASE_DOWN, database_outage_pause
from oficina.notify.outbox import outbox_stop, outbox_sweep

logger = logging.getLogger(__name__)

DELIVERY_QUEUES = ["outbox", "default"]
IMPORT_QUEUES = ["imports"]


# Delivery tasks one round runs at most before the loop seals the audit chain again: a backlog (an
# import's notices, a slow gateway) would otherwise keep every event unsealed until it is delivered
# (docs/security.md G23). A task is one message, or up to 20 notices of a bulk batch.
DELIVERY_TASKS_PER_ROUND = 5


def _worker(queue_names: list[str], *, max_tasks: int | None = None) -> Worker:
    return Worker(
        queue_names=queue_names,
        interval=0,
        batch=True,  # everything ready now (or max_tasks of it), then back to the caller's loop
        backend_name="default",
        startup_delay=False,
        max_tasks=max_tasks,
        worker_id=get_random_string(32),
        excluded_queue_names=[],
    )


def _backoff(failures: int) -> float:
    """Seconds to wait after the `failures`-th unexpected error in a row: 2, 4, 8… at most 30."""
    return float(min(2**failures, 30))


class _Loops:
    """What the stop signal reaches: a flag both loops check, and the Worker each is running."""

    def __init__(self, max_seconds: float) -> None:
        self.stopping = threading.Event()
        self.started = time.monotonic()
        self.max_seconds = max_seconds
        self._workers: dict[str, Worker] = {}
        self._lock = threading.Lock()

    def going_on(self) -> bool:
        if self.max_seconds and time.monotonic() - self.started >= self.max_seconds:
            self.stopping.set()
        return not self.stopping.is_set()

    def stop(self) -> None:
        self.stopping.set()
        outbox_stop()  # a batch of messages ends after the one in hand
        with self._lock:
            for worker in self._workers.values():
                worker.running = False  # finish the task in hand, take no other

    def run(self, name: str, worker: Worker) -> bool:
        """Runs `worker`; whether it stopped at its max_tasks (more may be waiting)."""
        with self._lock:
            if self.stopping.is_set():
                return False
            self._workers[name] = worker
        worker.run()
        return worker.max_tasks is not None and worker._run_tasks >= worker.max_tasks


class Command(BaseCommand):
    help = (
        "Entrega los mensajes de la bandeja de salida (SMS y correo) con reintentos, e importa los "
        "archivos de asociados cargados por los operadores."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--interval", type=seconds, default=1.0, help="Segundos entre rondas sin trabajo."
        )
        parser.add_argument("--sweep-every", type=seconds, default=15.0, help="Segundos entre barridos.")
        parser.add_argument(
            "--max-seconds", type=seconds, default=0, help="Termina tras N segundos (pruebas)."
        )

    def handle(
        self, *args: Any, interval: float, sweep_every: float, max_seconds: float, **options: Any
    ) -> None:
        loops = _Loops(max_seconds)
        signal.signal(signal.SIGTERM, lambda signum, frame: loops.stop())
        signal.signal(signal.SIGINT, lambda signum, frame: loops.stop())
        imports = threading.Thread(target=self._imports, args=(loops, interval), name="imports")
        imports.start()
        try:
            self._delivery(loops, interval, sweep_every)
        finally:
            loops.stopping.set()  # an import in hand finishes; no other starts
            imports.join()

    def _delivery(self, loops: _Loops, interval: float, sweep_every: float) -> None:
        last_sweep = 0.0
        failures = 0
        while loops.going_on():
            try:
                close_old_connections()
                audit_seal()  # every round: a request's events are chained within about a second
                if time.monotonic() - last_sweep >= sweep_every:
                    outbox_sweep()
                    last_sweep = time.monotonic()
                more = loops.run("delivery", _worker(DELIVERY_QUEUES, max_tasks=DELIVERY_TASKS_PER_ROUND))
                failures = 0
            except DATABASE_DOWN as exc:
                failures += 1
                time.sleep(database_outage_pause(exc, failures=failures, logger=logger))
                continue
            if not more:  # a backlog goes straight on, sealing between rounds
                time.sleep(interval)

    def _imports(self, loops: _Loops, interval: float) -> None:
        """The imports' loop, in its own thread with its own database connection. An unexpected error
        is logged and the loop goes on: a thread that died quietly would leave uploads queued for ever."""
        failures = 0
        try:
            while loops.going_on():
                try:
                    close_old_connections()
                    member_imports_abandoned_close()  # those a dead process left "Importando"
                    loops.run("imports", _worker(IMPORT_QUEUES))
                    failures = 0
                except DATABASE_DOWN as exc:
                    failures += 1
                    loops.stopping.wait(database_outage_pause(exc, failures=failures, logger=logger))
                    continue
                except Exception:
                    failures += 1
                    logger.exception("the imports' loop failed; it goes on")
                    loops.stopping.wait(_backoff(failures))
                    continue
                loops.stopping.wait(interval)
        finally:
            connections.close_all()  # this thread's own connection
