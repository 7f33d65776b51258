"""Import of the member registry from the core system's CSV export (documento,nombre,celular,correo).

The file is read once, as a stream, in batches: each batch costs one statement (an upsert and a
SELECT outside PostgreSQL), so a million rows stay fast and memory stays bounded (only the documents
already seen are kept, to catch duplicates). Everything happens inside one transaction; when the file
has errors and invalid rows are not to be skipped, the transaction is rolled back and nothing is
imported. Only the members created or changed are written, so only their rows are locked until then:
members the import leaves as they were sign in meanwhile without waiting for it.

Only name, mobile and email are ever written for an existing member: credentials, security image and
phrase, locks and status belong to the portal, not to the core system.

The mobile and the e-mail are where "Olvidé mi clave" sends temporary codes, so a change to them is
treated as at the counter (oficina/backoffice/services.py): in the same transaction, each existing
member whose mobile or e-mail changes gets an `import_contact_changed` event naming who imported,
and every OLD channel that changed is told (the channel the member already had, when the change only
adds one): a batch's events in one statement, its notices in another. The notices are dispatched
once the import commits.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TextIO

from django.db import connection, transaction
from django.utils import timezone
from django.utils.formats import number_format

from oficina.audit.models import Event
from oficina.audit.services import event_build, events_record
from oficina.lib.email import InvalidEmail, normalise_email
from oficina.lib.national_id import InvalidDocument, normalise_document
from oficina.lib.phone import InvalidMobile, normalise_mobile
from oficina.members.models import Member
from oficina.notify.models import OutboxMessage
from oficina.notify.outbox import messages_save, notice_build, outbox_dispatch
from oficina.notify.services import sms_texts_reused

HEADER = ("documento", "nombre", "celular", "correo")
MAX_NAME_LENGTH = 150
_CONTACT_FIELDS = ("name", "mobile", "email")  # what an import brings for an existing member
UPDATED_FIELDS = [*_CONTACT_FIELDS, "updated_at"]  # all an import may change in a member
CONTACT_NOTICE_TEMPLATE = "import_contact_changed"

_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes smuggled in by errors="surrogateescape"
_CONTROL_CATEGORIES = {"Cc", "Cf", "Cs"}  # tabs, newlines, bidi overrides, zero-width characters


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"Línea {self.line}: {self.message}"


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[LineError] = field(default_factory=list)
    # Existing members whose mobile or e-mail changed (counted in `updated` too): each was audited and
    # their old channels told.
    contacts_changed: int = 0
    # A problem with the file as a whole (header, encoding): nothing imported, even skipping invalid rows.
    aborted: bool = False

    @property
    def summary(self) -> str:
        return import_summary(self.created, self.updated, self.unchanged, len(self.errors))

    def event_counts(self) -> dict[str, Any]:
        """The counts of the `operator_import` audit event, the same from the back office's upload
        (backoffice/imports.py) and from `manage.py import_members`."""
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "contacts_changed": self.contacts_changed,
            "errors": len(self.errors),
            "aborted": self.aborted,
        }


def import_summary(created: int, updated: int, unchanged: int, errors: int) -> str:
    """An import's counts, as the command, the back office and its status page write them: grouped as
    Colombia writes them (1.000.000), whatever USE_THOUSAND_SEPARATOR says."""
    c, u, n, e = (
        number_format(count, force_grouping=True) for count in (created, updated, unchanged, errors)
    )
    return f"Creados: {c}, actualizados: {u}, sin cambios: {n}, con errores: {e}"


class _Row(NamedTuple):
    document: str
    name: str
    mobile: str
    email: str


class _ContactChange(NamedTuple):
    """An existing member's mobile or e-mail as it was before this import, and as it is now."""

    member_id: int
    document: str
    name: str
    old_mobile: str
    old_email: str
    mobile: str
    email: str


class _FileUnreadable(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.error = LineError(line, message)


class _RollBack(Exception):
    pass


def members_import(
    *, lines: Iterable[str] | TextIO, actor: str, skip_invalid: bool = False, batch_size: int = 2000
) -> ImportReport:
    """Creates or updates members by document from CSV lines; see the module docstring.

    `actor` names who imported (an operator's username, or the command) in the audit events."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = ImportReport()
    # Only the ids: a registry-wide change could queue a million notices.
    notices: list[int] = []
    try:
        with transaction.atomic():
            _plans_by_index()
            _import_rows(
                lines,
                report=report,
                notices=notices,
                actor=actor,
                skip_invalid=skip_invalid,
                batch_size=batch_size,
            )
            if report.errors and (report.aborted or not skip_invalid):
                raise _RollBack
    except _RollBack:
        return ImportReport(errors=report.errors, aborted=report.aborted)
    outbox_dispatch([OutboxMessage(pk=pk) for pk in notices], bulk=True)
    return report


def _plans_by_index() -> None:
    """On PostgreSQL, for the rest of the import's transaction (the caller's, when the import runs
    inside one): joins by nested loop, so each batch row finds its member through the document's
    unique index. The statistics a plan would rely on are
    those of before the import: loading a registry into an empty table, they still describe an empty
    table at the millionth row, and a hash join over the whole table per batch made the import
    quadratic (a million members: 29.6 → 42.6 s, measured). Sequential scans are priced out too:
    statistics taken when the table held few live rows among many pages (dead rows, a test suite's
    rollbacks in CI) made the nested loop read the whole table, materialised, for every batch."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_hashjoin = off")
        cursor.execute("SET LOCAL enable_mergejoin = off")
        cursor.execute("SET LOCAL enable_seqscan = off")


def _import_rows(
    lines: Iterable[str],
    *,
    report: ImportReport,
    notices: list[int],
    actor: str,
    skip_invalid: bool,
    batch_size: int,
) -> None:
    reader = csv.reader(_checked_lines(lines), strict=True)
    now = timezone.now()
    seen: set[str] = set()
    batch: list[_Row] = []
    try:
        header = next(reader, None)
        header_error = _header_error(header)
        if header_error:
            report.errors.append(LineError(1, header_error))
            report.aborted = True
            return
        line = reader.line_num + 1
        for cells in reader:
            if cells:  # a blank line is not a row
                row = _parsed_row(cells, line=line, seen=seen, report=report)
                if row is not None:
                    batch.append(row)
            line = reader.line_num + 1
            if len(batch) >= batch_size:
                _flush(
                    batch,
                    report=report,
                    notices=notices,
                    actor=actor,
                    now=now,
                    write=skip_invalid or not report.errors,
                )
    except _FileUnreadable as exc:
        report.errors.append(exc.error)
        report.aborted = True
        return
    except csv.Error:
        message = "El archivo no es un CSV válido a partir de esta línea."
        report.errors.append(LineError(reader.line_num, message))
        report.aborted = True
        return
    _flush(
        batch, report=report, notices=notices, actor=actor, now=now, write=skip_invalid or not report.errors
    )


def _checked_lines(lines: Iterable[str]) -> Iterator[str]:
    """Turns undecodable bytes into an error that names the physical line."""
    number = 0
    iterator = iter(lines)
    while True:
        try:
            text = next(iterator)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:  # a strict reader fails in chunks: the line is approximate
            raise _FileUnreadable(number + 1, _not_utf8()) from exc
        number += 1
        if _UNDECODABLE.search(text):
            raise _FileUnreadable(number, _not_utf8())
        yield text


def _not_utf8() -> str:
    return "El archivo no está codificado en UTF-8. Guárdalo como «CSV UTF-8» y vuelve a intentarlo."


def _header_error(header: list[str] | None) -> str | None:
    if header is None:
        return "El archivo está vacío: falta el encabezado documento,nombre,celular,correo."
    names = tuple(cell.strip().lstrip("\ufeff").strip().lower() for cell in header)
    if names == HEADER:
        return None
    # The line itself is not echoed: a file without a header starts with a member's data.
    message = "La primera línea debe ser el encabezado «documento,nombre,celular,correo», separado por comas."
    if len(header) == 1 and ";" in header[0]:
        message += " Parece separado por punto y coma: expórtalo como «CSV UTF-8 (delimitado por comas)»."
    return message


def _parsed_row(cells: list[str], *, line: int, seen: set[str], report: ImportReport) -> _Row | None:
    if len(cells) != len(HEADER):
        report.errors.append(LineError(line, f"La línea debe tener 4 columnas y tiene {len(cells)}."))
        return None
    raw_document, raw_name, raw_mobile, raw_email = cells
    problems: list[str] = []
    document = name = mobile = email = ""
    try:
        document = normalise_document(raw_document)
    except InvalidDocument as exc:
        problems.append(str(exc))
    else:
        if document in seen:
            problems.append("Esta cédula ya apareció en una línea anterior del archivo.")
        seen.add(document)
    try:
        name = _clean_name(raw_name)
    except ValueError as exc:
        problems.append(str(exc))
    try:
        mobile = normalise_mobile(raw_mobile) if raw_mobile.strip() else ""
    except InvalidMobile as exc:
        problems.append(str(exc))
    try:
        email = _clean_email(raw_email) if raw_email.strip() else ""
    except ValueError as exc:
        problems.append(str(exc))
    if not raw_mobile.strip() and not raw_email.strip():
        problems.append("El asociado debe tener celular o correo.")
    if problems:
        report.errors.append(LineError(line, " ".join(problems)))
        return None
    return _Row(document, name, mobile, email)


def _clean_name(raw: str) -> str:
    """Trimmed, inner whitespace collapsed; control characters are refused rather than dropped."""
    # isprintable() is the quick answer for the usual name; it also refuses harmless spaces like NBSP.
    if not raw.isprintable() and any(unicodedata.category(char) in _CONTROL_CATEGORIES for char in raw):
        raise ValueError("El nombre tiene caracteres no permitidos.")
    name = " ".join(raw.split())
    if not name:
        raise ValueError("El nombre es obligatorio.")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"El nombre no puede tener más de {MAX_NAME_LENGTH} caracteres.")
    return name


def _clean_email(raw: str) -> str:
    try:
        return normalise_email(raw)
    except InvalidEmail as exc:
        raise ValueError(str(exc)) from exc


def _flush(
    batch: list[_Row], *, report: ImportReport, notices: list[int], actor: str, now: datetime, write: bool
) -> None:
    """Writes one batch; once a strict import has failed, rows are only validated, never written."""
    rows = list(batch)
    batch.clear()
    if not write or not rows:
        return
    upsert = _upsert_postgresql if connection.vendor == "postgresql" else _upsert_portable
    created, updated, changes = upsert(rows, now=now)
    report.created += created
    report.updated += updated
    report.unchanged += len(rows) - created - updated
    report.contacts_changed += len(changes)
    notices.extend(_contact_changes_record(changes, actor=actor))


def _contact_changes_record(changes: list[_ContactChange], *, actor: str) -> list[int]:
    """The batch's events and notices, one INSERT for all the events and one for all the notices.
    Returns the ids of the queued notices."""
    if not changes:
        return []
    events: list[Event] = []
    messages: list[OutboxMessage] = []
    with sms_texts_reused():  # every notice of the batch has the same SMS text
        for change in changes:
            event, notices = _contact_change_build(change, actor=actor)
            events.append(event)
            messages.extend(notices)
    events_record(events)
    return [message.pk for message in messages_save(messages)]


def _contact_change_build(change: _ContactChange, *, actor: str) -> tuple[Event, list[OutboxMessage]]:
    """The event and the notices to the old channels, as for a change at the counter; neither holds
    a contact, old or new."""
    fields = [
        name
        for name, old, new in (
            ("mobile", change.old_mobile, change.mobile),
            ("email", change.old_email, change.email),
        )
        if old != new
    ]
    # The member as the notices see them: only the old channels that changed (and had a value). A
    # change that only adds a channel where there was none changes no old one; then the channel the
    # member already had is told, or a new channel for «Olvidé mi clave» came in unseen.
    mobile = change.old_mobile if "mobile" in fields else ""
    email = change.old_email if "email" in fields else ""
    if not mobile and not email:
        mobile, email = change.old_mobile, change.old_email
    before = Member(
        pk=change.member_id, document=change.document, name=change.name, mobile=mobile, email=email
    )
    event = event_build("import_contact_changed", member=before, operator=actor, fields=fields)
    return event, notice_build(member=before, template=CONTACT_NOTICE_TEMPLATE)


def _upsert_portable(rows: list[_Row], *, now: datetime) -> tuple[int, int, list[_ContactChange]]:
    """One SELECT to tell new, changed and unchanged members apart, one upsert of the first two."""
    existing = {
        document: (pk, (name, mobile, email))
        for pk, document, name, mobile, email in Member.objects.filter(
            document__in=[row.document for row in rows]
        ).values_list("pk", "document", "name", "mobile", "email")
    }
    created = [row for row in rows if row.document not in existing]
    updated = [row for row in rows if row.document in existing and existing[row.document][1] != row[1:]]
    if created or updated:
        Member.objects.bulk_create(
            [Member(**row._asdict(), created_at=now, updated_at=now) for row in (*created, *updated)],
            update_conflicts=True,
            unique_fields=["document"],
            update_fields=UPDATED_FIELDS,
        )
    changes = []
    for row in updated:
        pk, (_, old_mobile, old_email) = existing[row.document]
        if (old_mobile, old_email) != (row.mobile, row.email):
            changes.append(
                _ContactChange(pk, row.document, row.name, old_mobile, old_email, row.mobile, row.email)
            )
    return len(created), len(updated), changes


def _upsert_postgresql(rows: list[_Row], *, now: datetime) -> tuple[int, int, list[_ContactChange]]:
    """The batch in a single statement, its rows sent as one JSON array of arrays: an UPDATE of
    the members that changed, an INSERT of the new ones, and the old contacts of those whose mobile
    or e-mail changed.

    An unchanged member is neither written nor locked. (An `INSERT … ON CONFLICT DO UPDATE … WHERE`
    locks every conflicting row even when its WHERE leaves it alone: a re-import of the whole registry
    then held every member's row until it committed, and a PIN attempt, which writes that row, waited
    for the whole import; docs/security.md G18.) A changed member's row stays locked until the import
    commits.

    bulk_create spends ~70 µs a row building a model instance and preparing its fifteen values, and a
    separate SELECT per batch costs as much again, which would take a million-row import well past a
    minute. Here only the imported columns vary by row; every other column of a new member gets its
    model default, computed once per batch from a prototype instance (so a default must not need to
    differ per row).

    The rows travel as JSON, not as four `text[]` parameters: Django's psycopg cursor quotes its
    parameters into the statement in Python, ~20 ms of CPU for a 2,000-row batch's arrays against
    ~2 ms for `json.dumps` (about 9 s of a million-row import; `bench/import_changes.py`). Every value
    is text, and control characters (NUL included) never reach here (`_clean_name`).
    """
    table, column = _quoted_table_and_columns()
    prototype = Member(created_at=now, updated_at=now)
    targets: list[str] = []
    values: list[str] = []
    constants: list[Any] = []
    for model_field in Member._meta.concrete_fields:
        if model_field.primary_key:
            continue
        targets.append(column[model_field.name])
        if model_field.name in _Row._fields:
            values.append(f"batch.{column[model_field.name]}")
        else:
            values.append(f"CAST(%s AS {model_field.db_type(connection)})")
            constants.append(
                model_field.get_db_prep_save(getattr(prototype, model_field.attname), connection)
            )
    cells = ", ".join(f"item->>{index} AS {column[name]}" for index, name in enumerate(_Row._fields))
    contact = ", ".join(f"existing.{column[name]}" for name in _CONTACT_FIELDS)
    batch_contact = ", ".join(f"batch.{column[name]}" for name in _CONTACT_FIELDS)
    updates = ", ".join(f"{column[name]} = batch.{column[name]}" for name in _CONTACT_FIELDS)
    pk, document, name, mobile, email, updated_at = (
        column[field] for field in (Member._meta.pk.name, "document", "name", "mobile", "email", "updated_at")
    )
    # Every part of the statement reads the table as it was before the statement (PostgreSQL runs
    # them on one snapshot), so joining the rows `updated` back to the table gives their old contacts;
    # the rows it updates are locked before its snapshot (below), so that snapshot holds their latest.
    # ON CONFLICT DO NOTHING: a member created meanwhile by someone else is left to them.
    sql = (
        f"WITH batch AS (SELECT {cells} FROM json_array_elements(CAST(%s AS json)) AS item), "  # noqa: S608
        f"updated AS (UPDATE {table} AS existing SET {updates}, {updated_at} = CAST(%s AS timestamptz) "
        f"FROM batch WHERE existing.{document} = batch.{document} "
        f"AND ({contact}) IS DISTINCT FROM ({batch_contact}) "
        f"RETURNING existing.{pk}, existing.{document}, existing.{name}, "
        f"existing.{mobile}, existing.{email}), "
        f"inserted AS (INSERT INTO {table} ({', '.join(targets)}) SELECT {', '.join(values)} FROM batch "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS existing WHERE existing.{document} = batch.{document}) "
        f"ON CONFLICT ({document}) DO NOTHING RETURNING {pk}) "
        "SELECT (SELECT COUNT(*) FROM inserted), (SELECT COUNT(*) FROM updated), "
        f"(SELECT array_agg(ARRAY[CAST(updated.{pk} AS text), updated.{document}, updated.{name}, "
        f"previous.{mobile}, previous.{email}, updated.{mobile}, updated.{email}]) "
        f"FROM updated JOIN {table} AS previous ON previous.{pk} = updated.{pk} "
        f"WHERE (previous.{mobile}, previous.{email}) IS DISTINCT FROM (updated.{mobile}, updated.{email}))"
    )
    # First the rows this batch changes are locked, in key order (as another import would take them).
    # A member's own change that holds one of them is waited for here, and the upsert's snapshot is
    # taken after it committed: without this, the UPDATE waited for that row within its statement and
    # re-read it, while `previous` kept the snapshot's contacts from before the member's change (the
    # notice went to a contact the member had already replaced; G18). A row nobody had changed is not
    # locked, as before.
    lock = (
        f"WITH batch AS (SELECT {cells} FROM json_array_elements(CAST(%s AS json)) AS item) "  # noqa: S608
        f"SELECT existing.{pk} FROM {table} AS existing JOIN batch ON existing.{document} = batch.{document} "
        f"WHERE ({contact}) IS DISTINCT FROM ({batch_contact}) ORDER BY existing.{pk} FOR UPDATE OF existing"
    )
    batch_json = json.dumps(rows)  # each _Row, a tuple, becomes an array in _Row._fields' order
    params = [
        batch_json,
        Member._meta.get_field("updated_at").get_db_prep_save(now, connection),
        *constants,
    ]
    with connection.cursor() as cursor:
        cursor.execute(lock, [batch_json])
        cursor.execute(sql, params)
        created, updated, changed_rows = cursor.fetchone()
    changes = [_ContactChange(int(member_id), *contacts) for member_id, *contacts in changed_rows or ()]
    return created, updated, changes


def _quoted_table_and_columns() -> tuple[str, dict[str, str]]:
    """Names for hand-written SQL, taken from the model: only these identifiers go into its text."""
    quote = connection.ops.quote_name
    columns = {model_field.name: quote(model_field.column) for model_field in Member._meta.concrete_fields}
    return quote(Member._meta.db_table), columns
