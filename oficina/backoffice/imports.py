"""CSV import of the member registry from the operators' site, run as a background task.

The upload view stores the file in a MemberImport row and enqueues `import_members_task`; the status
page refreshes itself (a <meta http-equiv="refresh">, no script) until the task has written the
report. With the database task backend the import runs in `manage.py outbox_worker` (queue "imports",
its own thread, so deliveries go on meanwhile), and a big file does not outlive the web worker's
timeout; with the immediate backend (demo, tests) it runs inline.
Progress is the number of lines read so far, kept in the cache (shared through Redis in production):
the importer writes every batch as it reads, so lines read is how far the import has got. It is only
shown: a cache that fails (Redis refusing writes, or gone) costs the page its count, never the import,
whose work is in the database.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, connection, transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from oficina.audit.services import event_record
from oficina.backoffice.models import MemberImport
from oficina.backoffice.services import operator_event
from oficina.lib.bare import escaped_for_log
from oficina.members.importer import members_import

logger = logging.getLogger(__name__)

MAX_ERRORS_KEPT = 1000
PROGRESS_EVERY = 500
PROGRESS_SECONDS = 24 * 3600


def _progress_key(import_id: int) -> str:
    return f"backoffice:import:{import_id}:lines"


def member_import_start(*, request: HttpRequest, upload: UploadedFile, skip_invalid: bool) -> MemberImport:
    from oficina.backoffice.tasks import import_members_task

    content = b"".join(upload.chunks())
    total_lines = content.count(b"\n") + (1 if content and not content.endswith(b"\n") else 0)
    # Where the task is a row in this database (production), the upload, its event and its task are
    # one transaction: a connection lost between them would leave an import "En cola" for ever, with
    # the registry's file in it, that no worker takes. The immediate backend (demo) runs it inline.
    deferred = import_members_task.get_backend().supports_defer
    with transaction.atomic():
        job = MemberImport.objects.create(
            operator_id=request.user.pk,
            file_name=(upload.name or "asociados.csv")[:200],
            content=content,
            total_lines=total_lines,
            skip_invalid=skip_invalid,
        )
        operator_event(
            "operator_import_started",
            request=request,
            import_id=job.pk,
            lines=total_lines,
            skip_invalid=skip_invalid,
        )
        if deferred:
            import_members_task.enqueue(job.pk)
    if not deferred:
        import_members_task.enqueue(job.pk)
    return job


def member_import_progress(job: MemberImport) -> int | None:
    """Lines read so far by a running import, when the cache can tell: None before its first batch, when
    its progress could not be written, or when the cache cannot be read (the page then shows the
    import's status without the count, rather than a 503)."""
    try:
        value = cache.get(_progress_key(job.pk))
    except Exception:  # Redis unreachable: the status is in the database, the count was only a hint
        return None
    return int(value) if value is not None else None


class _Progress:
    """An import's progress in the cache, best-effort: a cache that refuses writes (Redis at maxmemory,
    a replica after a failover) or is gone failed the registry import, in the worker, at its first
    batch of PROGRESS_EVERY lines, though its work is in the database. The first failure is logged (one
    WARNING an import, not one a batch), the count already written is taken back (a count that stops
    would look like an import that hung), and no more is written for this import: with Redis gone,
    every try could wait for a connection."""

    def __init__(self, import_id: int) -> None:
        self.import_id = import_id
        self.key = _progress_key(import_id)
        self.failed = False

    def report(self, lines: int) -> None:
        if self.failed:
            return
        try:
            cache.set(self.key, lines, PROGRESS_SECONDS)
        except Exception as exc:
            self._failed(exc)
            with suppress(Exception):
                cache.delete(self.key)

    def end(self) -> None:
        try:
            cache.delete(self.key)
        except Exception as exc:  # it expires by itself (PROGRESS_SECONDS); a finished import shows none
            if not self.failed:
                self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.failed = True
        logger.warning(
            "import %s: its progress could not be written to the cache (%s: %s); the import goes on, "
            "its page shows no count of lines read",
            self.import_id,
            type(exc).__name__,
            escaped_for_log((str(exc).strip().splitlines() or [""])[0][:200]),
        )


def _counted(lines: Iterable[str], progress: _Progress) -> Iterator[str]:
    count = 0
    for line in lines:
        count += 1
        if count % PROGRESS_EVERY == 0:
            progress.report(count)
        yield line
    progress.report(count)


# PostgreSQL advisory locks (this key space, the import's id): held by the connection running an import.
RUNNING_LOCK_SPACE = 0x4F56  # "OV"


def _advisory(function: str, import_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [RUNNING_LOCK_SPACE, import_id])
        row = cursor.fetchone()
    return bool(row and row[0] is not False)


@contextmanager
def _held_while_running(import_id: int) -> Iterator[None]:
    """On PostgreSQL, a lock on the import that this connection holds while it runs: if the process
    dies (killed mid-import, the machine restarted), the lock goes with its connection and
    member_imports_abandoned_close can tell the import will never end. Taken before the status says
    "Importando", so a running import is never taken for an abandoned one."""
    if connection.vendor != "postgresql":
        yield
        return
    _advisory("pg_advisory_lock", import_id)
    try:
        yield
    finally:
        try:
            _advisory("pg_advisory_unlock", import_id)
        except DatabaseError:  # the connection is gone, and its lock with it
            logger.warning("import %s: the running lock could not be released (connection lost)", import_id)


def member_imports_abandoned_close() -> int:
    """Imports left "Importando" by a process that died: their transaction rolled back (nothing was
    imported) but their status would say "Importando" for ever, and the status page refresh for
    ever. On PostgreSQL each is marked failed (its file erased, as after any failure) and audited;
    returns how many. The worker's imports loop calls it between imports. SQLite: nothing to do
    here (one process runs the demo's imports inline)."""
    if connection.vendor != "postgresql":
        return 0
    closed = 0
    running = MemberImport.objects.filter(status=MemberImport.Status.RUNNING)
    for import_id in list(running.values_list("pk", flat=True)):
        if not _advisory("pg_try_advisory_lock", import_id):
            continue  # its importer is alive
        try:
            ended = MemberImport.objects.filter(pk=import_id, status=MemberImport.Status.RUNNING).update(
                status=MemberImport.Status.FAILED, content=b"", finished_at=timezone.now()
            )
            if ended:
                event_record("operator_import", import_id=import_id, failed=True, interrupted=True)
                logger.warning("import %s was interrupted (its process died): marked failed", import_id)
                closed += ended
        finally:
            _advisory("pg_advisory_unlock", import_id)
    return closed


STALE_REASONS: dict[str, str] = {
    MemberImport.Status.QUEUED: "esperó en cola más de {hours} sin que el proceso de tareas la tomara",
    MemberImport.Status.RUNNING: "quedó «Importando» más de {hours}: el proceso que la importaba se detuvo",
}
STALE_REASON = (
    "No se importó nada: la importación {why}, y su archivo se borró (Ley 1581: los datos personales "
    "no se guardan más de lo necesario). Pide a quien administra el servidor que revise el proceso de "
    "tareas y vuelve a cargar el archivo."
)


def member_imports_stale_expire(*, now: datetime | None = None) -> int:
    """Imports whose file, the registry's cédulas, mobiles and e-mails, no worker imported within
    RETENTION_IMPORT_FILE_HOURS: still "En cola" (the worker down, its task lost or failed before it
    took the import) or left "Importando" by a process that died (SQLite, or PostgreSQL while no
    worker runs member_imports_abandoned_close). A finished import erases its file; these kept it for
    ever. Each is marked failed with a Spanish `reason` the back office shows, its file erased, and
    audited (`operator_import` with `expired`); returns how many. `purge_expired` runs it daily.

    A running import is left alone while its process lives (on PostgreSQL, its advisory lock);
    a worker that takes a queued import meanwhile wins or loses the same conditional UPDATE."""
    stale = list(member_imports_stale(now=now).order_by("pk").values_list("pk", "status"))
    expired = 0
    for import_id, status in stale:
        with _not_running(import_id, status) as idle:
            if idle:
                expired += _stale_expire(import_id, status, hours=settings.RETENTION_IMPORT_FILE_HOURS)
    return expired


def member_imports_stale(*, now: datetime | None = None) -> QuerySet[MemberImport]:
    """The imports past RETENTION_IMPORT_FILE_HOURS still queued (since uploaded) or running (since
    started): what `member_imports_stale_expire` looks at, and what `purge_expired --dry-run` counts
    (a running one whose process still lives is left alone, so the count is at most what is expired)."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.RETENTION_IMPORT_FILE_HOURS)
    return MemberImport.objects.filter(
        Q(status=MemberImport.Status.QUEUED, created_at__lt=cutoff)
        | Q(status=MemberImport.Status.RUNNING, started_at__lt=cutoff)
    )


@contextmanager
def _not_running(import_id: int, status: str) -> Iterator[bool]:
    """Whether no live process is importing it: a queued import, or (PostgreSQL) one whose running lock
    nobody holds, held here while it is marked. SQLite cannot tell: past the age, it is not running."""
    if status != MemberImport.Status.RUNNING or connection.vendor != "postgresql":
        yield True
        return
    if not _advisory("pg_try_advisory_lock", import_id):
        yield False  # its importer is alive
        return
    try:
        yield True
    finally:
        _advisory("pg_advisory_unlock", import_id)


def _stale_expire(import_id: int, status: str, *, hours: int) -> int:
    in_words = "1 hora" if hours == 1 else f"{hours} horas"  # RETENTION_IMPORT_FILE_HOURS may be 1
    reason = STALE_REASON.format(why=STALE_REASONS[status].format(hours=in_words))
    with transaction.atomic():
        ended = MemberImport.objects.filter(pk=import_id, status=status).update(
            status=MemberImport.Status.FAILED, content=b"", finished_at=timezone.now(), reason=reason
        )
        if ended:
            event_record("operator_import", import_id=import_id, failed=True, expired=True, was=status)
            logger.warning(
                "import %s: its file waited more than %s hours (%s): erased", import_id, hours, status
            )
    return ended


def member_import_run(*, import_id: int) -> str:
    """The task's body: imports a queued file once, stores the report, erases the file, audits."""
    with _held_while_running(import_id):
        return _member_import_run(import_id)


def _member_import_run(import_id: int) -> str:
    claimed = MemberImport.objects.filter(pk=import_id, status=MemberImport.Status.QUEUED).update(
        status=MemberImport.Status.RUNNING, started_at=timezone.now()
    )
    if claimed != 1:
        return "skipped"
    job = MemberImport.objects.select_related("operator").get(pk=import_id)
    operator = job.operator.get_username() if job.operator else ""
    # surrogateescape keeps going past bytes that are not UTF-8, so the importer can name the line.
    lines = io.TextIOWrapper(
        io.BytesIO(bytes(job.content)), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )
    progress = _Progress(job.pk)
    counted = _counted(lines, progress)
    try:
        report = members_import(lines=counted, actor=operator, skip_invalid=job.skip_invalid)
    except Exception:
        MemberImport.objects.filter(pk=job.pk).update(
            status=MemberImport.Status.FAILED, content=b"", finished_at=timezone.now()
        )
        event_record("operator_import", operator=operator, import_id=job.pk, failed=True)
        raise
    finally:
        progress.end()
    imported = not report.aborted and (job.skip_invalid or not report.errors)
    MemberImport.objects.filter(pk=job.pk).update(
        status=MemberImport.Status.DONE,
        content=b"",
        finished_at=timezone.now(),
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        error_count=len(report.errors),
        errors=[str(error) for error in report.errors[:MAX_ERRORS_KEPT]],
        aborted=report.aborted,
    )
    event_record(
        "operator_import",
        operator=operator,
        import_id=job.pk,
        imported=imported,
        **report.event_counts(),
        skip_invalid=job.skip_invalid,
    )
    return MemberImport.Status.DONE
