"""Who may write the evidence, on PostgreSQL: the audit trail, the consent ledger and the members' data
requests (docs/operations.md, "Database roles"; docs/security.md §2.10, §2.12, G14).

What the application runs on those tables, and nothing more is granted to its role:
- `audit_event`: INSERT (every request, `event_record`; the import), SELECT (the sealer, verification,
  the back office), and UPDATE of the seal's three columns (the sealer, once per event). Never DELETE
  (retention keeps the trail: `purge_expired` deletes no event) nor TRUNCATE.
- `audit_chainhead`: SELECT … FOR UPDATE and INSERT (the sealer's `get_or_create` of the one row),
  UPDATE of `last_seq`, `last_hash` and `mac` (the sealer; `audit_sign_head`, `mac` only). Never DELETE.
- The consent ledger, `consent_policyversion`, `consent_consent` and `consent_consentrevocation`: INSERT
  (a version published, a member's «Permitir», a revocation granted) and SELECT. Never UPDATE, DELETE
  nor TRUNCATE (consent migration 0007 says what writes them).
- The data requests, `consent_datarequest`: INSERT (a member files one), SELECT, and UPDATE of the
  columns the data officer's answer and the extension set (`data_request_answer`,
  `data_request_extend`). Never DELETE nor TRUNCATE, nor UPDATE of who filed it, what, or when
  (consent migration 0008 says what writes them).
- Schema changes (`migrate`, and the migration that sets `signed_from_seq`) belong to the tables'
  owner, a role the web and worker processes do not use.

Column privileges cannot say "only while the event is unsealed", and the owner holds every privilege:
the triggers of `audit` migrations 0005 and 0006 and `consent` migrations 0007 and 0008 refuse the rest
(an answer or an extension given twice, or changed) for every role in an ordinary session, the owner
included. A superuser, or a role granted SET on `session_replication_role`, can turn them off for its
own session (`replica`): `--check` reports both."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

from oficina.audit.models import ChainHead, Event
from oficina.consent.models import Consent, ConsentRevocation, DataRequest, PolicyVersion

EVENT_SEAL_COLUMNS = ("seq", "prev_hash", "hash")
HEAD_COLUMNS = ("last_seq", "last_hash", "mac")
# The data officer's answer (`data_request_answer`) and the extension of the term (`data_request_extend`).
DATA_REQUEST_ANSWER_COLUMNS = ("status", "answer", "answered_at", "answered_by")
DATA_REQUEST_EXTENSION_COLUMNS = ("due_on", "first_due_on", "extension_reason", "extended_at", "extended_by")
DATA_REQUEST_COLUMNS = DATA_REQUEST_ANSWER_COLUMNS + DATA_REQUEST_EXTENSION_COLUMNS


@dataclass(frozen=True)
class Guarded:
    """A table of the evidence: the columns the application's role may UPDATE, and the triggers that
    must be there and firing."""

    model: type[Model]
    updates: tuple[str, ...]
    triggers: tuple[str, ...]

    @property
    def table(self) -> str:
        return self.model._meta.db_table


LEDGER_MODELS = (PolicyVersion, Consent, ConsentRevocation)
LEDGER = tuple(model._meta.db_table for model in LEDGER_MODELS)
# The triggers of `audit` migrations 0005 (rows) and 0006 (TRUNCATE), and of `consent` 0007 and 0008.
GUARDED = (
    Guarded(Event, EVENT_SEAL_COLUMNS, ("audit_event_append_only", "audit_event_no_truncate")),
    Guarded(ChainHead, HEAD_COLUMNS, ("audit_chainhead_forward_only", "audit_chainhead_no_truncate")),
    *(
        Guarded(model, (), (f"{model._meta.db_table}_insert_only", f"{model._meta.db_table}_no_truncate"))
        for model in LEDGER_MODELS
    ),
    Guarded(
        DataRequest,
        DATA_REQUEST_COLUMNS,
        ("consent_datarequest_write_once", "consent_datarequest_no_truncate"),
    ),
)


def _name(identifier: str) -> str:
    """A PostgreSQL identifier, quoted (role names are the operator's to choose)."""
    return '"' + identifier.replace('"', '""') + '"'


def grants_sql(*, app_role: str, owner_role: str, schema: str = "public") -> str:
    """The statements that give `app_role` what the portal needs and no more on the audit trail, the
    consent ledger and the data requests. To be run by `owner_role` (who owns the tables: it ran
    `migrate`) or a superuser, in the portal's database, after every `migrate`: they can be run again."""
    app, owner, where = _name(app_role), _name(owner_role), _name(schema)
    event, head = _name(Event._meta.db_table), _name(ChainHead._meta.db_table)
    seal = ", ".join(_name(column) for column in EVENT_SEAL_COLUMNS)
    moves = ", ".join(_name(column) for column in HEAD_COLUMNS)
    ledger = ", ".join(f"{where}.{_name(table)}" for table in LEDGER)
    requests = f"{where}.{_name(DataRequest._meta.db_table)}"
    answer_or_extension = ", ".join(_name(column) for column in DATA_REQUEST_COLUMNS)
    return "\n".join(
        [
            f"-- Oficina Virtual: the application's role {app}, the tables' owner {owner}.",
            f"-- Run as {owner} or a superuser, in the portal's database, after every migrate",
            "-- (docs/operations.md, Database roles). It can be run again.",
            "BEGIN;",
            "-- Nobody but the owner creates objects in the schema (PostgreSQL 15's default, not before).",
            f"REVOKE CREATE ON SCHEMA {where} FROM PUBLIC;",
            f"GRANT USAGE ON SCHEMA {where} TO {app};",
            "-- Every table, and those later migrations add: rows only; no TRUNCATE, no schema change.",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {where} TO {app};",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {where} TO {app};",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {where}",
            f"    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app};",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {where}",
            f"    GRANT USAGE, SELECT ON SEQUENCES TO {app};",
            "-- The audit trail: append and read events and seal them; never edit or delete one.",
            f"REVOKE ALL ON {where}.{event}, {where}.{head} FROM {app};",
            f"GRANT SELECT, INSERT ON {where}.{event} TO {app};",
            f"GRANT UPDATE ({seal}) ON {where}.{event} TO {app};",
            f"GRANT SELECT, INSERT ON {where}.{head} TO {app};",
            f"GRANT UPDATE ({moves}) ON {where}.{head} TO {app};",
            "-- The consent ledger: add and read policy versions, consents and revocations; never edit one.",
            f"REVOKE ALL ON {ledger} FROM {app};",
            f"GRANT SELECT, INSERT ON {ledger} TO {app};",
            "-- The data requests: file and read them, answer or extend one; never delete or rewrite one.",
            f"REVOKE ALL ON {requests} FROM {app};",
            f"GRANT SELECT, INSERT ON {requests} TO {app};",
            f"GRANT UPDATE ({answer_or_extension}) ON {requests} TO {app};",
            "COMMIT;",
            "",
        ]
    )


@dataclass(frozen=True)
class AuditPowers:
    """What the connected role can do to the evidence (the audit trail, the consent ledger and the data
    requests) beyond what the portal needs."""

    role: str
    superuser: bool
    owner: bool  # owns a guarded table (or may act as its owner): may drop or disable its triggers
    replica: bool  # may SET session_replication_role = replica, in which no ordinary trigger fires
    deletes: tuple[str, ...]  # tables it may DELETE from
    truncates: tuple[str, ...]  # tables it may TRUNCATE
    edits: tuple[str, ...]  # "table.column" it may UPDATE, besides the sealer's columns
    triggers_off: tuple[str, ...]  # the triggers of GUARDED missing or disabled

    @property
    def too_powerful(self) -> bool:
        return (
            self.superuser or self.owner or self.replica or bool(self.deletes or self.truncates or self.edits)
        )

    @property
    def sound(self) -> bool:
        return not self.too_powerful and not self.triggers_off

    @property
    def findings(self) -> list[str]:
        """What is wrong, one sentence each, in Spanish as the operators' commands: the lines of
        `audit_db_grants --check` and the message of `check --deploy`'s oficina.W003, written once."""
        role = f"El rol «{self.role}»"
        found = []
        if self.superuser:
            found.append(f"{role} es superusuario: puede todo, también quitar los disparadores.")
        if self.owner:
            found.append(
                f"{role} es dueño de tablas de la auditoría o del registro de autorizaciones: puede quitar "
                "sus disparadores y cambiar sus permisos."
            )
        if self.replica and not self.superuser:
            found.append(
                f"{role} puede poner session_replication_role = replica: en su sesión no se dispara ningún "
                "disparador."
            )
        if self.deletes:
            found.append(f"Puede borrar filas (DELETE) de: {', '.join(self.deletes)}.")
        if self.truncates:
            found.append(f"Puede vaciar (TRUNCATE): {', '.join(self.truncates)}.")
        if self.edits:
            found.append(
                f"Puede cambiar (UPDATE) columnas que la aplicación nunca cambia: {', '.join(self.edits)}."
            )
        if self.triggers_off:
            found.append(f"Disparadores ausentes o desactivados: {', '.join(self.triggers_off)}.")
        return found


def audit_powers(connection: BaseDatabaseWrapper) -> AuditPowers | None:
    """The connected role's powers over the guarded tables; None where there are no roles (SQLite)."""
    if connection.vendor != "postgresql":
        return None
    owner: list[str] = []
    deletes: list[str] = []
    truncates: list[str] = []
    edits: list[str] = []
    triggers_off: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        role, superuser = cursor.fetchone()
        # Before PostgreSQL 15 only a superuser may set it; from 15 on it can be granted too (GRANT SET
        # ON PARAMETER), which has_parameter_privilege sees, as it sees a superuser's right.
        cursor.execute("SELECT current_setting('server_version_num')::int")
        replica = superuser
        if cursor.fetchone()[0] >= 150000:
            cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
            (replica,) = cursor.fetchone()
        for guarded in GUARDED:
            table = guarded.table
            cursor.execute(
                "SELECT pg_has_role(c.relowner, 'MEMBER'), has_table_privilege(c.oid, 'DELETE'), "
                "has_table_privilege(c.oid, 'TRUNCATE'), "
                "ARRAY(SELECT t.tgname FROM pg_trigger t WHERE t.tgrelid = c.oid "
                # "O": fires (in ordinary sessions); "A": always; "D": disabled; "R": only in replica mode.
                "AND t.tgenabled IN ('O', 'A')) "
                "FROM pg_class c WHERE c.oid = to_regclass(%s)",
                [connection.ops.quote_name(table)],
            )
            row = cursor.fetchone()
            if row is None:  # not migrated yet: nothing to protect, and no trigger either
                triggers_off.extend(guarded.triggers)
                continue
            owns, may_delete, may_truncate, firing = row
            for granted, where in ((owns, owner), (may_delete, deletes), (may_truncate, truncates)):
                if granted:
                    where.append(table)
            triggers_off.extend(trigger for trigger in guarded.triggers if trigger not in firing)
            for field in guarded.model._meta.concrete_fields:
                if field.column in guarded.updates:
                    continue
                cursor.execute("SELECT has_column_privilege(%s, %s, 'UPDATE')", [table, field.column])
                if cursor.fetchone()[0]:
                    edits.append(f"{table}.{field.column}")
    return AuditPowers(
        role=role,
        superuser=superuser,
        owner=bool(owner),
        replica=bool(replica),
        deletes=tuple(deletes),
        truncates=tuple(truncates),
        edits=tuple(edits),
        triggers_off=tuple(triggers_off),
    )
